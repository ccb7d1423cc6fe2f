use std::path::PathBuf;

use anyhow::Context;

use crate::CliResult;

pub async fn run(json: bool, keep: Option<PathBuf>) -> CliResult {
    let tmp;
    let dir = match keep {
        Some(d) => {
            if d.join("timepost.sqlite").exists() {
                return Err(crate::Failure::Input(anyhow::anyhow!(
                    "{} already holds a demo store; pass an empty directory",
                    d.display()
                )));
            }
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
            d
        }
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    let report = timepost::demo::run(&dir).await.context("the demo failed")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", timepost::report::render_text(&report));
    }
    Ok(())
}
