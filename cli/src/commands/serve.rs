use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use timepost::ports::Queue;

use crate::CliResult;

pub async fn run(config: &Path, bind: Option<String>) -> CliResult {
    let stack = super::open(config)?;
    let addr = bind.unwrap_or_else(|| stack.config.server.bind.clone());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let token = timepost::http::ensure_admin_token(stack.secrets.as_ref()).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let queue: Arc<dyn Queue> = Arc::new(stack.store.clone());
    let worker = tokio::spawn(timepost::worker::run(
        stack.engine.clone(),
        queue.clone(),
        stop_rx.clone(),
    ));
    let schedules = tokio::spawn(timepost::schedules::run(
        stack.engine.clone(),
        Duration::from_secs(stack.config.schedules.held_recheck_secs),
        stop_rx.clone(),
    ));
    let mut pollers = Vec::new();
    for (source, every) in [
        ("harvest", stack.config.schedules.harvest_poll_secs),
        ("toggl", stack.config.schedules.toggl_poll_secs),
    ] {
        if let Some(p) = timepost::poll::Poller::for_source(source, &stack.config.intake)? {
            println!("  polling {source} every {every} s");
            pollers.push(tokio::spawn(timepost::schedules::run_poller(
                Arc::new(p),
                timepost::poll::PollPorts::local(&stack),
                Duration::from_secs(every),
                stop_rx.clone(),
            )));
        }
    }
    let app = timepost::http::router(timepost::http::AppState::local(&stack));
    println!("timepost listening on http://{local}");
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
    println!("  console: http://{local}/console/login (sign in with a token)");
    println!("  store: {} · Ctrl-C to stop", stack.store_path().display());
    let mut stop = stop_rx.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = stop.changed() => {}
            }
        })
        .await
        .context("server failed")?;
    tracing::info!("shutting down: finishing the message in hand");
    let _ = stop_tx.send(true);
    let _ = worker.await;
    let _ = schedules.await;
    for p in pollers {
        let _ = p.await;
    }
    println!("timepost stopped");
    Ok(())
}
