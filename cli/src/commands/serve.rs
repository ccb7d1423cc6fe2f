use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use timepost::ports::Queue;

use crate::CliResult;

pub async fn run(config: &Path, bind: Option<String>) -> CliResult {
    let stack = super::open(config)?;
    // A store too large for the whole-file check at every open gets it
    // here, once, before this process takes in any work.
    stack.store.check_whole(&stack.config.store.path)?;
    let addr = bind.unwrap_or_else(|| stack.config.server.bind.clone());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let token = timepost_web::ensure_admin_token(stack.secrets.as_ref()).await?;
    let secrets_file = stack.config.store.secrets_file.display().to_string();
    if let Some(weak) = timepost_web::weak_admin_token(stack.secrets.as_ref()).await {
        return Err(crate::Failure::Input(anyhow::anyhow!(
            "the admin_token in {secrets_file} is refused: {weak}. Delete its line and start \
             again (timepost then creates a strong one there)"
        )));
    }
    let (_, key_created) = timepost_web::ensure_token_key(stack.secrets.as_ref()).await?;
    for u in &stack.config.console.users {
        if let Some(warning) = u.unkeyed_warning() {
            tracing::warn!("{warning}");
        } else if key_created {
            tracing::warn!(
                "console user `{}` has a token_hmac, but the token_key secret was missing and a \
                 new one was created in {secrets_file}: that token no longer signs in; issue a \
                 new one with `timepost token new --user {} --role {}`",
                u.name,
                u.name,
                u.role.as_str()
            );
        }
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // The queue worker, the schedules and the pollers run on threads of
    // their own: their SQLite writes and the ledger calls never occupy the
    // threads that answer webhooks and pages.
    let background = Background::start()?;
    let bg = background.handle();

    let queue: Arc<dyn Queue> = Arc::new(stack.store.clone());
    // A read-only store (a restored snapshot) is kept as archived: no
    // worker, no schedules.
    let live = !stack.config.store.read_only;
    let mut pollers = Vec::new();
    if live {
        pollers.push(bg.spawn(timepost::worker::run(
            stack.engine.clone(),
            queue.clone(),
            stop_rx.clone(),
        )));
        pollers.push(bg.spawn(timepost::schedules::run(
            stack.engine.clone(),
            Duration::from_secs(stack.config.schedules.held_recheck_secs),
            stop_rx.clone(),
        )));
    } else {
        println!("  read-only store ([store] read_only): no queue worker, no schedules");
    }
    for (source, every) in [
        ("harvest", stack.config.schedules.harvest_poll_secs),
        ("toggl", stack.config.schedules.toggl_poll_secs),
    ] {
        let poller = match live {
            true => timepost::poll::Poller::for_source(source, &stack.config.intake)?,
            false => None,
        };
        if let Some(p) = poller {
            println!("  polling {source} every {every} s");
            pollers.push(bg.spawn(timepost::schedules::run_poller(
                Arc::new(p),
                stack.poll_ports(),
                Duration::from_secs(every),
                stop_rx.clone(),
            )));
        }
    }
    if let Some(job) = timepost::schedules::ArchiveJob::local(&stack)?.filter(|_| live) {
        let every = stack.config.schedules.archive_secs;
        println!("  archiving closed periods every {every} s ([retention])");
        pollers.push(bg.spawn(timepost::schedules::run_archive(
            job,
            Duration::from_secs(every),
            stop_rx.clone(),
        )));
    }
    // Printed after the banner's first line (which names the address).
    let mut notes: Vec<String> = Vec::new();
    if live {
        let job = Arc::new(
            timepost::stack::alert_job::AlertJob::local(&stack)
                .await
                .map_err(|e| crate::Failure::Input(anyhow::anyhow!("[alerts]: {e}")))?,
        );
        let every = stack.config.alerts.every_secs;
        notes.push(format!(
            "  alert pass every {every} s ({} notifier(s))",
            job.notifiers.len()
        ));
        pollers.push(bg.spawn(timepost::schedules::run_alerts(
            job.clone(),
            Duration::from_secs(every),
            stop_rx.clone(),
        )));
        if let Some(x) = &stack.config.exports {
            notes.push(format!(
                "  exporting each closed {} to {} ([exports])",
                match x.period {
                    timepost::alerts::config::ExportPeriod::Week => "week",
                    timepost::alerts::config::ExportPeriod::Month => "month",
                },
                x.dir.display()
            ));
            pollers.push(bg.spawn(timepost::schedules::run_exports(
                job,
                Duration::from_secs(x.every_secs),
                stop_rx.clone(),
            )));
        }
    }
    let reconcile_every = stack.config.reconcile.schedule_secs;
    let reconciling = live && reconcile_every > 0;
    if reconciling {
        pollers.push(bg.spawn(timepost::schedules::run_reconcile(
            timepost::schedules::ReconcileJob::local(&stack),
            Duration::from_secs(reconcile_every),
            stop_rx.clone(),
        )));
    }
    let mut state = timepost_web::AppState::local(&stack);
    if let Some(oidc) = &stack.config.console.oidc {
        // Flow cookies are signed with a key of this process: a sign-in
        // started before a restart is simply started again.
        let provider = timepost_web::signin::provider(
            oidc,
            stack.config.console.public_url.as_deref(),
            stack.secrets.as_ref(),
            timepost::oidc::random_flow_key(),
        )
        .await
        .map_err(|e| crate::Failure::Input(anyhow::anyhow!("[console.oidc]: {e}")))?;
        state = state.with_oidc(provider);
    }
    let app = timepost_web::router(state);
    // Registered before the banner, so a stop sent as soon as it is read
    // is not lost.
    let mut signals = StopSignals::new().context("cannot install the signal handlers")?;
    let server = tokio::spawn(crate::listener::serve(
        listener,
        app,
        crate::listener::Limits::from(&stack.config.server),
        stop_rx.clone(),
    ));
    println!("timepost listening on http://{local}");
    if reconciling {
        println!(
            "  reconciling the last closed week and the current one every {reconcile_every} s \
             ([reconcile] schedule_secs)"
        );
    }
    println!("  webhooks: POST /webhooks/clockify, POST /webhooks/toggl · health: GET /healthz");
    // The token itself is never printed (terminals are logged, scrolled
    // back and screen-shared): say where it is.
    if token.is_some() {
        println!(
            "  admin API token created in {} (key admin_token, readable by you only); \
             read it there to sign in",
            stack.config.store.secrets_file.display()
        );
    } else {
        println!(
            "  admin API: bearer token `admin_token` from {}",
            stack.config.store.secrets_file.display()
        );
    }
    match &stack.config.console.oidc {
        Some(o) => println!(
            "  console: http://{local}/console (sign in with {}, or with a token)",
            o.provider_name
        ),
        None => println!("  console: http://{local}/console/login (sign in with a token)"),
    }
    for n in &notes {
        println!("{n}");
    }
    println!(
        "  store: {} · Ctrl-C or SIGTERM to stop",
        stack.store_path().display()
    );

    let which = signals.next().await;
    let grace = Duration::from_secs(stack.config.server.shutdown_grace_secs);
    tracing::info!(
        signal = which,
        grace_secs = grace.as_secs(),
        "shutting down: finishing the message in hand; the rest stays queued"
    );
    let _ = stop_tx.send(true);
    let everything = async {
        let _ = server.await;
        for p in pollers {
            let _ = p.await;
        }
    };
    let finished = tokio::select! {
        r = tokio::time::timeout(grace, everything) => r.is_ok(),
        again = signals.next() => {
            tracing::warn!(signal = again, "second stop signal: exiting now");
            false
        }
    };
    if !finished {
        // The queue is durable: a message cut short is received again on
        // the next start, as after a crash. Exit without waiting for the
        // tasks still running.
        tracing::warn!("stopping without waiting any longer; unfinished work stays queued");
        println!("timepost stopped (work still in progress stays queued)");
        std::process::exit(0);
    }
    drop(background);
    println!("timepost stopped");
    Ok(())
}

/// The runtime of the background work. Dropped (on any return) without
/// blocking, as an async caller must: by then its tasks have finished, or
/// the process is leaving with the queue durable.
struct Background(Option<tokio::runtime::Runtime>);

impl Background {
    fn start() -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("timepost-work")
            .enable_all()
            .build()
            .context("cannot start the background runtime")?;
        Ok(Self(Some(rt)))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        // Always `Some` until dropped.
        self.0
            .as_ref()
            .map_or_else(tokio::runtime::Handle::current, |rt| rt.handle().clone())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// SIGINT (Ctrl-C) and SIGTERM (systemd, containers) both ask for a
/// graceful stop.
struct StopSignals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// The next stop signal's name.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => "SIGINT",
                _ = self.term.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
