use timepost::exceptions::ExceptionCode;

use crate::{CliResult, Failure};

pub fn run(code: Option<String>, all: bool) -> CliResult {
    if all || code.is_none() {
        println!("| code | what it means | what to do |\n| --- | --- | --- |");
        for c in ExceptionCode::ALL {
            println!("| `{c}` | {} | {} |", c.title(), c.fix_hint());
        }
        return Ok(());
    }
    let code: ExceptionCode = code
        .unwrap_or_default()
        .parse()
        .map_err(|e: String| Failure::Input(anyhow::anyhow!(e)))?;
    println!("{code}\n  {}\n  fix: {}", code.title(), code.fix_hint());
    Ok(())
}
