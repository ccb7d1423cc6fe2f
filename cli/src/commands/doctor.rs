//! `timepost --backend aws doctor`: check a deployed stack's after-deploy
//! steps in order (docs/deploy.md, "After deploy, in order") and say, per
//! step, OK or what is missing with the command that fixes it.
//!
//! 1. the environment names every resource, and each answers;
//! 2. the rules file is in the bucket and parses;
//! 3. the secrets its ledger and its pollers need exist (names only, never
//!    values);
//! 4. mappings are loaded (at least one employee and one project row);
//! 5. the dead-letter and ingest queue depths (information);
//! 6. browser sign-in to the console, when `TIMEPOST_OIDC_*` (the stack's
//!    `SignInIssuer` output) or `[console.oidc]` names a provider: its
//!    discovery document and keys answer and the client id is readable.
//!
//! Exit 0 when steps 1-4 and 6 pass, 1 otherwise. The local backend is refused:
//! every local command already validates the config file and opens the
//! store, and `timepost mappings export` / `timepost status` show the rest.

// Without the `aws` feature only step 1 is reported (the build cannot
// reach a stack), so the helpers of the later steps go unused.
#![cfg_attr(not(feature = "aws"), allow(dead_code))]

use serde_json::json;

use super::backend::{BackendKind, Global};
use crate::{CliResult, Failure};

/// How one step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ok,
    /// Required and not done: the run exits 1.
    Missing,
    /// Not checked because an earlier step is missing.
    Skipped,
    /// Reported, never failing.
    Info,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Missing => "missing",
            State::Skipped => "skipped",
            State::Info => "info",
        }
    }
}

/// One checked step.
#[derive(Debug, Clone)]
pub struct Step {
    pub n: u8,
    pub name: &'static str,
    pub state: State,
    /// What was found (or what is missing).
    pub detail: Vec<String>,
    /// The commands that fix it.
    pub fix: Vec<String>,
}

impl Step {
    fn new(n: u8, name: &'static str) -> Self {
        Self {
            n,
            name,
            state: State::Ok,
            detail: Vec::new(),
            fix: Vec::new(),
        }
    }

    fn missing(&mut self, detail: impl Into<String>, fix: impl Into<String>) {
        self.state = State::Missing;
        self.detail.push(detail.into());
        let fix = fix.into();
        if !fix.is_empty() && !self.fix.contains(&fix) {
            self.fix.push(fix);
        }
    }
}

/// The step names, in order.
pub const STEPS: [&str; 6] = [
    "stack resources",
    "rules file",
    "secrets",
    "mappings",
    "queues",
    "console sign-in",
];

/// True when every required step passed.
pub fn all_ok(steps: &[Step]) -> bool {
    steps
        .iter()
        .all(|s| matches!(s.state, State::Ok | State::Info))
}

/// The report as text.
pub fn render_text(steps: &[Step]) -> String {
    let mut out = String::new();
    for s in steps {
        let mark = match s.state {
            State::Ok => "OK",
            State::Missing => "MISSING",
            State::Skipped => "SKIPPED",
            State::Info => "INFO",
        };
        out.push_str(&format!("step {} {}: {mark}\n", s.n, s.name));
        for d in &s.detail {
            out.push_str(&format!("  {d}\n"));
        }
        for f in &s.fix {
            out.push_str(&format!("  fix: {f}\n"));
        }
    }
    out.push_str(if all_ok(steps) {
        "all required steps are done\n"
    } else {
        "some steps are not done yet (docs/deploy.md, \"After deploy, in order\")\n"
    });
    out
}

/// The report as JSON.
pub fn render_json(steps: &[Step]) -> serde_json::Value {
    json!({
        "ok": all_ok(steps),
        "steps": steps.iter().map(|s| json!({
            "step": s.n,
            "name": s.name,
            "status": s.state.as_str(),
            "detail": s.detail,
            "fix": s.fix,
        })).collect::<Vec<_>>(),
    })
}

/// The secrets a config needs, as (name without the stack prefix, what
/// it is for). A ledger's refresh token may instead already be kept in its
/// `<prefix>_oauth_state` (after the first refresh); that pair is returned
/// as alternatives by [`ledger_token_secrets`].
pub fn required_secrets(cfg: &timepost::config::Config) -> Vec<(String, String)> {
    use timepost::config::LedgerKind;
    let mut out = Vec::new();
    let ledger_prefix = match cfg.ledger.kind {
        LedgerKind::Sandbox => None,
        LedgerKind::Qbo => cfg.ledger.qbo.as_ref().map(|q| q.secret_prefix.clone()),
        LedgerKind::Xero => cfg.ledger.xero.as_ref().map(|x| x.secret_prefix.clone()),
    };
    if let Some(p) = ledger_prefix {
        let kind = cfg.ledger.kind.as_str();
        out.push((
            format!("{p}_client_id"),
            format!("the {kind} app's client id"),
        ));
        out.push((
            format!("{p}_client_secret"),
            format!("the {kind} app's client secret"),
        ));
    }
    if let Some(h) = &cfg.intake.harvest {
        out.push((
            h.token_secret.clone(),
            "the Harvest personal access token ([intake.harvest] token_secret)".into(),
        ));
    }
    if let Some(t) = &cfg.intake.toggl_poll {
        out.push((
            t.token_secret.clone(),
            "a Toggl workspace admin's API token ([intake.toggl_poll] token_secret)".into(),
        ));
    }
    out
}

/// For a QBO or Xero ledger: (`<prefix>_refresh_token`,
/// `<prefix>_oauth_state`), either of which is enough.
pub fn ledger_token_secrets(cfg: &timepost::config::Config) -> Option<(String, String)> {
    use timepost::config::LedgerKind;
    let p = match cfg.ledger.kind {
        LedgerKind::Sandbox => return None,
        LedgerKind::Qbo => cfg.ledger.qbo.as_ref()?.secret_prefix.clone(),
        LedgerKind::Xero => cfg.ledger.xero.as_ref()?.secret_prefix.clone(),
    };
    Some((format!("{p}_refresh_token"), format!("{p}_oauth_state")))
}

/// The webhook secrets: needed only for the trackers whose webhooks point
/// at the stack, so reported, never required.
pub const WEBHOOK_SECRETS: [(&str, &str); 2] = [
    (
        timepost_web::secret_names::TOGGL,
        "Toggl webhook subscriptions",
    ),
    (timepost_web::secret_names::CLOCKIFY, "Clockify webhooks"),
];

/// The fix for a missing secret.
pub fn create_secret_command(prefix: &str, name: &str) -> String {
    format!("aws secretsmanager create-secret --name '{prefix}{name}' --secret-string '<value>'")
}

pub async fn run(g: &Global, json: bool) -> CliResult {
    if g.backend == BackendKind::Local {
        return Err(Failure::Input(anyhow::anyhow!(
            "`timepost doctor` checks a deployed stack: add --backend aws (locally every \
             command checks {} and opens the store itself; `timepost mappings export` and \
             `timepost status` show the mappings and the queue)",
            g.config.display()
        )));
    }
    let steps = checks().await;
    if json {
        println!("{}", render_json(&steps));
    } else {
        print!("{}", render_text(&steps));
    }
    if all_ok(&steps) {
        Ok(())
    } else {
        Err(Failure::Runtime(anyhow::anyhow!(
            "the stack is not ready: see the steps marked missing above"
        )))
    }
}

#[cfg(not(feature = "aws"))]
async fn checks() -> Vec<Step> {
    let mut s = Step::new(1, STEPS[0]);
    s.missing(
        "this timepost was built without AWS support",
        "cargo install --path cli --features aws",
    );
    let mut out = vec![s];
    out.extend(skipped_from(2));
    out
}

fn skipped_from(n: u8) -> Vec<Step> {
    (n..=STEPS.len() as u8)
        .map(|i| {
            let mut s = Step::new(i, STEPS[usize::from(i) - 1]);
            s.state = State::Skipped;
            s.detail.push(format!("needs step {} first", n - 1));
            s
        })
        .collect()
}

#[cfg(feature = "aws")]
async fn checks() -> Vec<Step> {
    aws::checks().await
}

#[cfg(feature = "aws")]
mod aws {
    use timepost::aws::stack::{load_config, AwsStackError};
    use timepost::aws::{AwsClients, AwsSettings, DynamoStore, S3Archive, SecretsManagerStore};
    use timepost::config::{Config, LedgerKind};
    use timepost::mapping::MappingTable;
    use timepost::oidc::{OidcConfig, Provider};
    use timepost::ports::{MappingStore, Secrets};

    use super::*;

    const OUTPUTS_FIX: &str = "export the stack's outputs as TIMEPOST_* (docs/deploy.md \
        \u{a7}8, step 1), or deploy the stack first: sam deploy --guided";

    /// An SDK error with its causes (the service's own message).
    fn chain(e: &dyn std::error::Error) -> String {
        let mut s = e.to_string();
        let mut cur = e.source();
        while let Some(c) = cur {
            let t = c.to_string();
            // The SDK's outer message often repeats its source's.
            if !s.contains(&t) {
                s.push_str(": ");
                s.push_str(&t);
            }
            cur = c.source();
        }
        s
    }

    pub async fn checks() -> Vec<Step> {
        let mut steps = Vec::new();

        // 1. The environment names every resource, and each answers.
        let mut s1 = Step::new(1, STEPS[0]);
        let settings = match AwsSettings::from_env() {
            Ok(s) => s,
            Err(e) => {
                s1.missing(e.to_string(), OUTPUTS_FIX);
                steps.push(s1);
                steps.extend(skipped_from(2));
                return steps;
            }
        };
        if std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .is_err()
        {
            s1.detail.push(
                "AWS_REGION is not set: the region comes from the AWS profile, if any".into(),
            );
        }
        let sdk = timepost::aws::sdk_config().await;
        let clients = AwsClients::from_sdk(&sdk, settings.s3_path_style);
        match clients
            .dynamodb
            .describe_table()
            .table_name(&settings.table)
            .send()
            .await
        {
            Ok(_) => s1.detail.push(format!("table {} answers", settings.table)),
            Err(e) => s1.missing(
                format!(
                    "table {} (TIMEPOST_TABLE) does not answer: {}",
                    settings.table,
                    chain(&e)
                ),
                OUTPUTS_FIX,
            ),
        }
        let mut depths = Vec::new();
        for (var, url) in [
            ("TIMEPOST_QUEUE_URL", &settings.queue_url),
            ("TIMEPOST_DLQ_URL", &settings.dlq_url),
        ] {
            match queue_depth(&clients, url).await {
                Ok(n) => {
                    s1.detail.push(format!("queue {url} answers"));
                    depths.push(Some(n));
                }
                Err(e) => {
                    s1.missing(
                        format!("queue {url} ({var}) does not answer: {e}"),
                        OUTPUTS_FIX,
                    );
                    depths.push(None);
                }
            }
        }
        match clients
            .s3
            .head_bucket()
            .bucket(&settings.bucket)
            .send()
            .await
        {
            Ok(_) => s1
                .detail
                .push(format!("bucket {} answers", settings.bucket)),
            Err(e) => s1.missing(
                format!(
                    "bucket {} (TIMEPOST_BUCKET) does not answer: {}",
                    settings.bucket,
                    chain(&e)
                ),
                OUTPUTS_FIX,
            ),
        }
        let resources_ok = s1.state == State::Ok;
        steps.push(s1);
        if !resources_ok {
            steps.extend(skipped_from(2));
            return steps;
        }

        // 2. The rules file is in the bucket and parses.
        let mut s2 = Step::new(2, STEPS[1]);
        let archive = S3Archive::new(clients.s3.clone(), &settings.bucket);
        let location = format!("s3://{}/{}", settings.bucket, settings.config_key);
        let push = "timepost --backend aws --config timepost.toml config push".to_string();
        let config = match load_config(&archive, &settings).await {
            Ok(c) => Some(c),
            Err(e @ AwsStackError::MissingConfig { .. }) => {
                s2.missing(e.to_string(), push.clone());
                None
            }
            Err(AwsStackError::Store(e)) => {
                s2.missing(format!("cannot read {location}: {e}"), String::new());
                None
            }
            Err(e) => {
                s2.missing(e.to_string(), format!("correct timepost.toml, then {push}"));
                None
            }
        };
        let config = config.and_then(|mut c| match ledger_override(&settings, &mut c) {
            Ok(()) => Some(c),
            Err(e) => {
                s2.missing(
                    e,
                    "redeploy with --parameter-overrides LedgerKind=sandbox|qbo|xero",
                );
                None
            }
        });
        if let Some(c) = &config {
            s2.detail.push(format!(
                "{location} parses; the ledger is {}",
                c.ledger.kind.as_str()
            ));
            if let Some(e) = ledger_section_missing(c) {
                s2.missing(e, format!("correct timepost.toml, then {push}"));
            }
        }
        steps.push(s2);

        // 3. The secrets the config needs.
        let secrets = SecretsManagerStore::new(
            clients.secrets.clone(),
            &settings.secret_prefix,
            std::time::Duration::ZERO,
        );
        let mut s3 = Step::new(3, STEPS[2]);
        match &config {
            None => {
                s3.state = State::Skipped;
                s3.detail
                    .push("needs the rules file (step 2): it names the secrets".into());
            }
            Some(cfg) => check_secrets(&mut s3, cfg, &secrets, &settings.secret_prefix).await,
        }
        steps.push(s3);

        // 4. Mappings are loaded.
        let mut s4 = Step::new(4, STEPS[3]);
        let store = DynamoStore::new(clients.dynamodb.clone(), &settings.table);
        match store.snapshot().await {
            Err(e) => s4.missing(format!("cannot read the mappings: {e}"), String::new()),
            Ok(m) => {
                let count = |t: MappingTable| m.rows().iter().filter(|r| r.table == t).count();
                let (emp, proj) = (count(MappingTable::Employee), count(MappingTable::Project));
                s4.detail.push(format!(
                    "{} mapping rows: {emp} employee, {proj} project",
                    m.len()
                ));
                let import = "timepost --backend aws mappings import mappings.csv";
                if emp == 0 {
                    s4.missing("no employee mapping row", import);
                }
                if proj == 0 {
                    s4.missing("no project mapping row", import);
                }
            }
        }
        steps.push(s4);

        // 5. Queue depths (information).
        let mut s5 = Step::new(5, STEPS[4]);
        s5.state = State::Info;
        if let Some(Some(n)) = depths.get(1) {
            s5.detail
                .push(format!("dead-letter queue: {n} message(s) waiting"));
            if *n > 0 {
                s5.fix.push(
                    "see them with `timepost --backend aws status`; after fixing the cause, \
                     `timepost --backend aws redrive --all-dead-letters`"
                        .into(),
                );
            }
        }
        if let Some(Some(n)) = depths.first() {
            s5.detail
                .push(format!("ingest queue: {n} message(s) waiting"));
        }
        steps.push(s5);

        // 6. Browser sign-in to the console.
        steps.push(check_sign_in(config.as_ref(), &secrets, &settings.secret_prefix).await);
        steps
    }

    /// Step 6: the provider `TIMEPOST_OIDC_*` or `[console.oidc]` names
    /// answers (discovery document, signing keys) and its client id is
    /// readable; whether `token_key` exists (a sign-in may then finish on
    /// any admin function instance). Information only when no provider is
    /// named.
    async fn check_sign_in(
        config: Option<&Config>,
        secrets: &SecretsManagerStore,
        prefix: &str,
    ) -> Step {
        let mut s = Step::new(6, STEPS[5]);
        let base = config.and_then(|c| c.console.oidc.clone());
        let Some(oidc) = OidcConfig::with_env(base, |k| std::env::var(k).ok()) else {
            s.state = State::Info;
            s.detail.push(
                "no sign-in provider named here: export TIMEPOST_OIDC_ISSUER=<the stack's \
                 SignInIssuer output> and TIMEPOST_OIDC_CLIENT_ID_SECRET=console_client_id \
                 (docs/deploy.md \u{a7}8, step 1) to check it; without a provider the console \
                 answers only bearer tokens"
                    .into(),
            );
            return s;
        };
        if let Some((field, message)) = oidc.problem() {
            s.missing(
                format!("sign-in setting {field}: {message}"),
                "export the stack's SignInIssuer output as TIMEPOST_OIDC_ISSUER, or correct \
                 [console.oidc] in timepost.toml",
            );
            return s;
        }
        let issuer = oidc.issuer.clone();
        // The key only signs flow cookies, none of which this check makes.
        match Provider::resolve(oidc, secrets, vec![0; 32]).await {
            Err(e) => s.missing(
                format!("cannot set up sign-in with {issuer}: {e}"),
                "redeploy the stack (it writes the console_client_id secret when it creates \
                 the user pool), or name your provider's client in [console.oidc] client_id",
            ),
            Ok(provider) => match provider.check().await {
                Ok((authorize, keys)) => s.detail.push(format!(
                    "{issuer} answers: sign-in at {authorize}, {keys} signing key(s), client {}",
                    provider.client_id()
                )),
                Err(e) => s.missing(
                    format!("the sign-in provider {issuer} does not answer: {e}"),
                    "check TIMEPOST_OIDC_ISSUER against the stack's SignInIssuer output",
                ),
            },
        }
        let key = timepost_web::secret_names::TOKEN_KEY;
        match secrets.get(key).await {
            Ok(Some(v)) if !v.is_empty() => s.detail.push(format!(
                "{prefix}{key} exists: a sign-in may finish on any admin function instance"
            )),
            Ok(_) => s.detail.push(format!(
                "{prefix}{key} is not set: a sign-in must come back to the instance that \
                 started it ({})",
                create_secret_command(prefix, key)
            )),
            Err(e) => s.detail.push(format!("cannot read {prefix}{key}: {e}")),
        }
        s.detail.push(
            "create a user with a role: aws cognito-idp admin-create-user --user-pool-id \
             <UserPoolId output> --username <e-mail> --user-attributes Name=email,Value=<e-mail> \
             Name=custom:timepost_role,Value=finance"
                .into(),
        );
        s
    }

    /// What `TIMEPOST_LEDGER` (the template's `LedgerKind`) does to the
    /// config's `[ledger] kind`, as the functions apply it.
    fn ledger_override(settings: &AwsSettings, cfg: &mut Config) -> Result<(), String> {
        if let Some(kind) = &settings.ledger {
            cfg.ledger.kind = match kind.as_str() {
                "sandbox" => LedgerKind::Sandbox,
                "qbo" => LedgerKind::Qbo,
                "xero" => LedgerKind::Xero,
                other => return Err(AwsStackError::LedgerKind(other.to_string()).to_string()),
            };
        }
        Ok(())
    }

    /// A QBO or Xero ledger (perhaps chosen by `LedgerKind`) without its
    /// section in the rules file.
    fn ledger_section_missing(cfg: &Config) -> Option<String> {
        let (kind, present) = match cfg.ledger.kind {
            LedgerKind::Sandbox => return None,
            LedgerKind::Qbo => ("qbo", cfg.ledger.qbo.is_some()),
            LedgerKind::Xero => ("xero", cfg.ledger.xero.is_some()),
        };
        (!present).then(|| {
            format!(
                "the ledger is {kind} (the LedgerKind parameter overrides [ledger] kind) \
                 but the rules file has no [ledger.{kind}] section"
            )
        })
    }

    async fn check_secrets(
        step: &mut Step,
        cfg: &Config,
        secrets: &SecretsManagerStore,
        prefix: &str,
    ) {
        // Values are read only to learn whether they exist, then dropped.
        let exists = |name: String| async move {
            secrets
                .get(&name)
                .await
                .map(|v| v.is_some_and(|v| !v.is_empty()))
        };
        let mut checked = 0;
        for (name, what) in required_secrets(cfg) {
            checked += 1;
            match exists(name.clone()).await {
                Ok(true) => step.detail.push(format!("{prefix}{name} exists ({what})")),
                Ok(false) => step.missing(
                    format!("secret {prefix}{name} is missing: {what}"),
                    create_secret_command(prefix, &name),
                ),
                Err(e) => step.missing(format!("cannot read {prefix}{name}: {e}"), String::new()),
            }
        }
        if let Some((refresh, state)) = ledger_token_secrets(cfg) {
            checked += 1;
            let r = exists(refresh.clone()).await;
            let s = exists(state.clone()).await;
            match (r, s) {
                (Ok(true), _) | (_, Ok(true)) => step
                    .detail
                    .push(format!("{prefix}{refresh} or {prefix}{state} exists")),
                (Err(e), _) | (_, Err(e)) => {
                    step.missing(format!("cannot read {prefix}{refresh}: {e}"), String::new())
                }
                _ => step.missing(
                    format!(
                        "secret {prefix}{refresh} is missing: the refresh token of the first \
                         authorization (docs/deploy.md)"
                    ),
                    create_secret_command(prefix, &refresh),
                ),
            }
        }
        for (name, what) in WEBHOOK_SECRETS {
            match exists(name.to_string()).await {
                Ok(true) => step.detail.push(format!("{prefix}{name} exists ({what})")),
                Ok(false) => step.detail.push(format!(
                    "{prefix}{name} is not set: needed only for {what} ({})",
                    create_secret_command(prefix, name)
                )),
                Err(e) => step.detail.push(format!("cannot read {prefix}{name}: {e}")),
            }
        }
        if checked == 0 {
            step.detail.insert(
                0,
                format!(
                    "the {} ledger and the configured sources need no secret",
                    cfg.ledger.kind.as_str()
                ),
            );
        }
    }

    /// ApproximateNumberOfMessages of one queue (also: does it answer).
    async fn queue_depth(clients: &AwsClients, url: &str) -> Result<u64, String> {
        let attrs = clients
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names("ApproximateNumberOfMessages".into())
            .send()
            .await
            .map_err(|e| chain(&e))?;
        Ok(attrs
            .attributes()
            .into_iter()
            .flatten()
            .find(|(k, _)| k.as_str() == "ApproximateNumberOfMessages")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0))
    }
}
