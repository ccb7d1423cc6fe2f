use super::backend::Global;
use crate::CliResult;

pub async fn run(g: &Global, json: bool) -> CliResult {
    let ops = super::backend::open(g).await?;
    let report = timepost::report::collect(
        ops.entries.as_ref(),
        ops.ledger.as_ref(),
        ops.queue.as_ref(),
        ops.engine.counters.snapshot(),
        &[],
    )
    .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", timepost::report::render_text(&report));
    }
    Ok(())
}
