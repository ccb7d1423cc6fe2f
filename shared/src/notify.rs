//! The [`Notifier`] adapters that work everywhere: a chat webhook and
//! e-mail over SMTP (the SNS topic is `crate::aws::sns`, AWS only).
//!
//! - Webhook: `POST` of `{"text": "…"}` as JSON — the payload Slack's
//!   incoming webhooks take ("Sending messages using incoming webhooks",
//!   api.slack.com/messaging/webhooks: a JSON body with a `text` field) and
//!   that Teams' incoming webhooks accept as a simple text card. Any 2xx is
//!   success.
//! - SMTP through `lettre` (rustls on ring, STARTTLS required unless
//!   `security = "none"`): one message to the configured recipients plus
//!   the notice's extra recipients (a project owner).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::alerts::{AlertsConfig, SmtpConfig, SmtpSecurity};
use crate::ports::{Notice, Notifier, NotifyError, Secrets, StoreError};

/// A Slack / Teams-compatible incoming webhook.
pub struct WebhookNotifier {
    http: reqwest::Client,
    url: String,
}

impl WebhookNotifier {
    pub fn new(url: impl Into<String>) -> Result<Self, NotifyError> {
        let http = crate::net::http_client(Duration::from_secs(20)).map_err(|e| NotifyError {
            channel: "webhook",
            message: e.to_string(),
        })?;
        Ok(Self {
            http,
            url: url.into(),
        })
    }
}

#[async_trait]
impl Notifier for WebhookNotifier {
    fn channel(&self) -> &'static str {
        "webhook"
    }

    async fn notify(&self, n: &Notice) -> Result<(), NotifyError> {
        let err = |message: String| NotifyError {
            channel: "webhook",
            message,
        };
        let mut text = format!("*{}*\n{}", n.subject, n.text);
        if !n.extra_to.is_empty() {
            text.push_str(&format!("\nFor: {}", n.extra_to.join(", ")));
        }
        let resp = self
            .http
            .post(&self.url)
            .json(&serde_json::json!({ "text": text }))
            .send()
            .await
            // The URL carries the channel's token: never in a message.
            .map_err(|e| err(format!("cannot reach the webhook: {}", e.without_url())))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(err(format!("the webhook answered {status}")))
        }
    }
}

/// E-mail over SMTP.
pub struct SmtpNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

fn smtp_err(message: impl std::fmt::Display) -> NotifyError {
    NotifyError {
        channel: "smtp",
        message: message.to_string(),
    }
}

impl SmtpNotifier {
    /// A transport for `cfg`, with the login read from `secrets` when named.
    pub async fn new(cfg: &SmtpConfig, secrets: &dyn Secrets) -> Result<Self, NotifyError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = match cfg.security {
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host)
                .map_err(smtp_err)?
                .port(cfg.port.unwrap_or(465)),
            SmtpSecurity::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)
                    .map_err(smtp_err)?
                    .port(cfg.port.unwrap_or(587))
            }
            SmtpSecurity::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host)
                    .port(cfg.port.unwrap_or(25))
            }
        };
        let mut builder = builder.timeout(Some(Duration::from_secs(cfg.timeout_secs.max(1))));
        if let (Some(u), Some(p)) = (&cfg.username_secret, &cfg.password_secret) {
            let get = |name: String| async move {
                secrets
                    .get(&name)
                    .await
                    .map_err(smtp_err)?
                    .ok_or_else(|| smtp_err(format!("secret `{name}` is not set")))
            };
            let user = get(u.clone()).await?;
            let pass = get(p.clone()).await?;
            builder = builder.credentials(Credentials::new(user, pass));
        }
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| smtp_err(format!("[alerts.smtp] from `{}`: {e}", cfg.from)))?;
        let to = cfg
            .to
            .iter()
            .map(|t| {
                t.parse::<Mailbox>()
                    .map_err(|e| smtp_err(format!("[alerts.smtp] to `{t}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            transport: builder.build(),
            from,
            to,
        })
    }
}

#[async_trait]
impl Notifier for SmtpNotifier {
    fn channel(&self) -> &'static str {
        "smtp"
    }

    async fn notify(&self, n: &Notice) -> Result<(), NotifyError> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(n.subject.clone())
            .header(ContentType::TEXT_PLAIN);
        let mut any = false;
        for t in &self.to {
            b = b.to(t.clone());
            any = true;
        }
        for extra in &n.extra_to {
            match extra.parse::<Mailbox>() {
                Ok(m) if !self.to.contains(&m) => {
                    b = b.to(m);
                    any = true;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(owner = %extra, error = %e, "alerts: owner address unusable")
                }
            }
        }
        if !any {
            return Err(smtp_err("no recipient: set [alerts.smtp] to"));
        }
        let msg = b.body(n.text.clone()).map_err(smtp_err)?;
        self.transport.send(msg).await.map_err(smtp_err)?;
        Ok(())
    }
}

/// The notifiers `[alerts]` configures: the webhook (its URL given or in
/// a secret) and SMTP. The AWS stack adds its SNS topic.
pub async fn from_config(
    cfg: &AlertsConfig,
    secrets: &dyn Secrets,
) -> Result<Vec<Arc<dyn Notifier>>, NotifyError> {
    let mut out: Vec<Arc<dyn Notifier>> = Vec::new();
    let url = match (&cfg.webhook_url, &cfg.webhook_url_secret) {
        (Some(u), _) => Some(u.clone()),
        (None, Some(name)) => Some(
            secrets
                .get(name)
                .await
                .map_err(|e: StoreError| NotifyError {
                    channel: "webhook",
                    message: e.to_string(),
                })?
                .ok_or_else(|| NotifyError {
                    channel: "webhook",
                    message: format!("secret `{name}` is not set"),
                })?
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    if let Some(url) = url {
        out.push(Arc::new(WebhookNotifier::new(url)?));
    }
    if let Some(smtp) = &cfg.smtp {
        out.push(Arc::new(SmtpNotifier::new(smtp, secrets).await?));
    }
    Ok(out)
}
