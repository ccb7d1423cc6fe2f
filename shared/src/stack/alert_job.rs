//! The local stack's alert pass and scheduled export: what `timepost
//! serve` runs on its timers and `timepost alerts check` / `timepost
//! export period` run by hand. Everything is in the stack's SQLite file;
//! exports go to `[exports] dir`.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use crate::alerts::deliver::{Pass, PassReport};
use crate::alerts::gather::Sources;
use crate::alerts::Condition;
use crate::config::Config;
use crate::exports::{ExportError, Written};
use crate::local::{DirArchive, SecretsFile, SqliteStore};
use crate::ports::{Notifier, NotifyError, StoreResult};
use crate::reconcile::Period;

pub struct AlertJob {
    pub store: SqliteStore,
    pub secrets: Arc<SecretsFile>,
    pub config: Config,
    pub notifiers: Vec<Arc<dyn Notifier>>,
}

impl AlertJob {
    /// The job of a local stack, with the notifiers `[alerts]` configures.
    pub async fn local(stack: &super::LocalStack) -> Result<Self, NotifyError> {
        let notifiers =
            crate::notify::from_config(&stack.config.alerts, stack.secrets.as_ref()).await?;
        Ok(Self {
            store: stack.store.clone(),
            secrets: stack.secrets.clone(),
            config: stack.config.clone(),
            notifiers,
        })
    }

    fn pass(&self) -> Pass<'_> {
        Pass {
            sources: Sources {
                entries: &self.store,
                queue: &self.store,
                reconcile: &self.store,
                watermarks: &self.store,
                secrets: self.secrets.as_ref(),
            },
            alerts: &self.store,
            watermarks: &self.store,
            notifiers: &self.notifiers,
        }
    }

    /// The active conditions now (nothing stored, nothing sent).
    pub async fn check(&self, now: DateTime<Utc>) -> StoreResult<Vec<Condition>> {
        self.pass().check(&self.config, now).await
    }

    /// A full pass: alert state and notices.
    pub async fn run(&self, now: DateTime<Utc>, force_digest: bool) -> StoreResult<PassReport> {
        self.pass().run(&self.config, now, force_digest).await
    }

    fn exports(&self) -> crate::config::alerts::ExportsConfig {
        self.config.exports.clone().unwrap_or_default()
    }

    fn sink(&self) -> DirArchive {
        DirArchive::new(&self.exports().dir)
    }

    /// Export `period` into `[exports] dir` (or `dir` when given).
    pub async fn export(
        &self,
        period: &Period,
        dir: Option<&std::path::Path>,
    ) -> Result<Written, ExportError> {
        let sink = match dir {
            Some(d) => DirArchive::new(d),
            None => self.sink(),
        };
        crate::exports::export(&self.store, &self.store, &sink, "", period).await
    }

    /// The scheduled export: the last closed period, once, then a notice.
    pub async fn export_due(&self, today: NaiveDate) -> Result<Option<Written>, ExportError> {
        crate::exports::scheduled(
            &self.store,
            &self.store,
            &self.sink(),
            "",
            &self.exports(),
            &self.notifiers,
            today,
        )
        .await
    }
}
