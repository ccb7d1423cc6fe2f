//! `timepost accrue --from DATE --to DATE`: the labour-cost accrual for a
//! period as one balanced QBO JournalEntry (labour expense vs payroll
//! liabilities), from the posted time and the `cost_rate` mapping
//! attributes. `--dry-run` prints the request instead of sending it.

use std::path::Path;

use anyhow::anyhow;
use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use timepost::config::LedgerKind;
use timepost::ledger::journal_entry::{accrue_from, AccrualError};
use timepost::ledger::qbo::{journal_batch, QboRequests};
use timepost::ports::MappingStore;

use crate::{CliResult, Failure};
use timepost::ledger::cloud::Connect;

#[derive(clap::Args)]
pub struct Args {
    /// First day of the period (YYYY-MM-DD).
    #[arg(long)]
    from: NaiveDate,
    /// Last day of the period (YYYY-MM-DD); the entry is dated on it.
    #[arg(long)]
    to: NaiveDate,
    /// Print the request that would be sent; send nothing.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(config: &Path, args: Args) -> CliResult {
    let stack = super::open(config)?;
    let Some(qbo) = stack
        .config
        .ledger
        .qbo
        .clone()
        .filter(|_| stack.config.ledger.kind == LedgerKind::Qbo)
    else {
        return Err(Failure::Input(anyhow!(
            "accruals are posted to QuickBooks Online: set ledger.kind = \"qbo\""
        )));
    };
    if args.to < args.from {
        return Err(Failure::Input(anyhow!("--to is before --from")));
    }
    let mappings = stack.store.snapshot().await?;
    let accrual = accrue_from(
        &stack.store,
        args.from,
        args.to,
        &mappings,
        &stack.config.rules,
    )
    .await
    .map_err(|e| match e {
        AccrualError::Store(e) => Failure::Runtime(anyhow!(e)),
        e => Failure::Input(anyhow!(e)),
    })?;
    println!(
        "labour cost {}..{}: {} in total",
        accrual.from, accrual.to, accrual.total
    );
    for (party, cost) in &accrual.by_party {
        println!("  {party:<12} {cost}");
    }
    for (party, minutes) in &accrual.skipped {
        println!("  {party:<12} left out: {minutes} min without a cost_rate on its mapping");
    }
    let Some(entry) = accrual.entry else {
        println!("nothing to accrue");
        return Ok(());
    };
    let mut h = Sha256::new();
    h.update(format!(
        "accrual:{}:{}:{}:{}",
        qbo.realm_id, accrual.from, accrual.to, accrual.total
    ));
    let request_id = format!("ta-{}", &hex::encode(h.finalize())[..33]);
    if args.dry_run {
        let call = QboRequests {
            settings: qbo.settings(),
        }
        .batch_call(&request_id, &journal_batch(&entry))
        .map_err(|e| anyhow!(e))?;
        println!("\n{}", call.render());
        return Ok(());
    }
    let ledger = qbo.connect(stack.secrets.clone()).map_err(|e| anyhow!(e))?;
    let rec = ledger
        .post_journal_entry(&entry, &request_id)
        .await
        .map_err(|e| anyhow!(e))?;
    println!("posted as JournalEntry {} (requestid {request_id})", rec.id);
    Ok(())
}
