use super::backend::Global;
use crate::CliResult;

pub async fn run(g: &Global, json: bool, period: Option<String>, full: bool) -> CliResult {
    let ops = super::backend::open(g).await?;
    if let Some(label) = period {
        let p: timepost::aggregates::Period = label
            .parse()
            .map_err(|e: String| crate::Failure::Input(anyhow::anyhow!(e)))?;
        let r = timepost::period_report::collect_period(ops.entries.as_ref(), p, &label).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            print!("{}", timepost::period_report::render_period(&r));
        }
        return Ok(());
    }
    if !full {
        let r =
            timepost::summary::collect(ops.entries.as_ref(), ops.ledger.name(), ops.queue.as_ref())
                .await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            print!("{}", timepost::summary::render_text(&r));
        }
        return Ok(());
    }
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
