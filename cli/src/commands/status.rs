use std::path::Path;

use crate::CliResult;

pub async fn run(config: &Path, json: bool) -> CliResult {
    let stack = super::open(config)?;
    let report = timepost::demo::report_for(&stack, &[]).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", timepost::report::render_text(&report));
    }
    Ok(())
}
