//! The SAM template (`infra/template.yaml`) keeps the contract the Rust side
//! relies on: the DynamoDB table the adapters query, the functions cargo-lambda
//! builds, the queue settings that make "nothing lost, nothing twice" hold on
//! SQS, the environment every function reads, and least-privilege IAM.
//!
//! cfn-lint and `sam validate --lint` (in `scripts/test.sh`) check that the
//! template is valid CloudFormation; these tests check that it is *this*
//! application's template. They read the YAML as written: SAM's intrinsic
//! tags (`!Ref`, `!Sub`, `!GetAtt`, ...) arrive as `Value::Tagged`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_yaml::Value;

/// The seven functions: logical id, crate directory under `functions/`,
/// binary name.
const FUNCTIONS: [(&str, &str, &str); 7] = [
    ("WebhookFunction", "webhook", "timepost-webhook"),
    ("AdminFunction", "admin", "timepost-admin"),
    ("PollerFunction", "poller", "timepost-poller"),
    ("SyncFunction", "sync", "timepost-sync"),
    ("ArchiveFunction", "archive", "timepost-archive"),
    ("AlertsFunction", "alerts", "timepost-alerts"),
    ("ReconcileFunction", "reconcile", "timepost-reconcile"),
];

/// Environment every function reads (`AwsSettings::from_env` and the
/// function crates), with the resource or parameter each must name.
const ENVIRONMENT: [(&str, &str, &str); 8] = [
    ("TIMEPOST_TABLE", "Ref", "Table"),
    ("TIMEPOST_QUEUE_URL", "Ref", "IngestQueue"),
    ("TIMEPOST_DLQ_URL", "Ref", "DeadLetterQueue"),
    ("TIMEPOST_BUCKET", "Ref", "Bucket"),
    ("TIMEPOST_SECRET_PREFIX", "Ref", "SecretPrefix"),
    ("TIMEPOST_LEDGER", "Ref", "LedgerKind"),
    ("TIMEPOST_CONFIG_KEY", "Ref", "ConfigKey"),
    ("RUST_LOG", "Ref", "LogLevel"),
];

/// IAM statements allowed to grant on `Resource: "*"`, as (resource logical
/// id, statement Sid) with the reason. Empty: every statement in the
/// template names its resource. (SAM adds the managed
/// AWSLambdaBasicExecutionRole to each function role for its own logs; that
/// is not a statement of this template.)
const WILDCARD_RESOURCE_ALLOWED: &[(&str, &str, &str)] = &[];

/// How every secret resource starts: the stack's own `SecretPrefix`.
const SECRETS_ARN_PREFIX: &str =
    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretPrefix}";

/// The secrets each function may read (names after the prefix; `*` covers
/// Secrets Manager's random suffix and a longer name), and whether it may
/// write them back.
const SECRETS: [(&str, &[&str], bool); 7] = [
    (
        "WebhookFunction",
        &["toggl_webhook_secret*", "clockify_webhook_secret*"],
        false,
    ),
    (
        "AdminFunction",
        &[
            "admin_token*",
            "token_key*",
            "qbo*",
            "xero*",
            "console_client_id*",
        ],
        true,
    ),
    ("PollerFunction", &["harvest_token*", "toggl_token*"], false),
    ("SyncFunction", &["qbo*", "xero*"], true),
    // The ledger's read-back in a snapshot.
    ("ArchiveFunction", &["qbo*", "xero*"], true),
    // The ledger's token state only (read), and its own channels' secrets.
    (
        "AlertsFunction",
        &["qbo_oauth_state*", "xero_oauth_state*", "alerts_*"],
        false,
    ),
    // The trackers' listing of a period and the ledger's read-back.
    (
        "ReconcileFunction",
        &["harvest_token*", "toggl_token*", "qbo*", "xero*"],
        true,
    ),
];

fn template() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    let text = std::fs::read_to_string(&path).expect("read infra/template.yaml");
    serde_yaml::from_str(&text).expect("infra/template.yaml is YAML")
}

/// `value[key]` for a mapping (never looks through a tag).
fn at<'a>(value: &'a Value, key: &str) -> &'a Value {
    value
        .as_mapping()
        .and_then(|m| m.get(key))
        .unwrap_or_else(|| panic!("missing `{key}` in {value:?}"))
}

fn opt<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.as_mapping().and_then(|m| m.get(key))
}

fn string(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value:?}"))
}

fn number(value: &Value) -> u64 {
    match value {
        Value::Number(n) => n.as_u64().expect("a whole number"),
        Value::String(s) => s.parse().expect("a number in a string"),
        other => panic!("expected a number, got {other:?}"),
    }
}

/// The intrinsic a value is (`Ref`, `GetAtt`, `Sub`, ...) and its argument.
fn intrinsic(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_string(),
            &t.value,
        )),
        _ => None,
    }
}

fn is_ref(value: &Value, target: &str) -> bool {
    matches!(intrinsic(value), Some((tag, arg)) if tag == "Ref" && arg.as_str() == Some(target))
}

fn is_get_att(value: &Value, target: &str) -> bool {
    matches!(intrinsic(value), Some((tag, arg)) if tag == "GetAtt" && arg.as_str() == Some(target))
}

fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    at(at(t, "Resources"), id)
}

fn props<'a>(t: &'a Value, id: &str) -> &'a Value {
    at(resource(t, id), "Properties")
}

fn resources_of_type<'a>(t: &'a Value, ty: &str) -> Vec<(&'a str, &'a Value)> {
    at(t, "Resources")
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| opt(r, "Type").and_then(Value::as_str) == Some(ty))
        .map(|(k, r)| (string(k), r))
        .collect()
}

/// A function property, or the Globals value when the function has none.
fn function_prop<'a>(t: &'a Value, id: &str, key: &str) -> &'a Value {
    opt(props(t, id), key).unwrap_or_else(|| at(at(at(t, "Globals"), "Function"), key))
}

fn parameter<'a>(t: &'a Value, name: &str) -> &'a Value {
    at(at(t, "Parameters"), name)
}

#[test]
fn table_is_the_dynamodb_contract() {
    let t = template();
    let table = resource(&t, "Table");
    assert_eq!(string(at(table, "Type")), "AWS::DynamoDB::Table");
    assert_eq!(string(at(table, "DeletionPolicy")), "Retain");
    let p = at(table, "Properties");
    assert_eq!(string(at(p, "BillingMode")), "PAY_PER_REQUEST");

    let attributes: BTreeMap<&str, &str> = at(p, "AttributeDefinitions")
        .as_sequence()
        .expect("AttributeDefinitions")
        .iter()
        .map(|a| {
            (
                string(at(a, "AttributeName")),
                string(at(a, "AttributeType")),
            )
        })
        .collect();
    let want: BTreeMap<&str, &str> = [
        "pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk",
    ]
    .into_iter()
    .map(|a| (a, "S"))
    .collect();
    assert_eq!(attributes, want, "attribute definitions");

    let keys = |schema: &Value| -> Vec<(String, String)> {
        schema
            .as_sequence()
            .expect("KeySchema")
            .iter()
            .map(|k| {
                (
                    string(at(k, "AttributeName")).to_string(),
                    string(at(k, "KeyType")).to_string(),
                )
            })
            .collect()
    };
    let pair = |hash: &str, range: &str| {
        vec![
            (hash.to_string(), "HASH".to_string()),
            (range.to_string(), "RANGE".to_string()),
        ]
    };
    assert_eq!(keys(at(p, "KeySchema")), pair("pk", "sk"));

    let gsis: BTreeMap<&str, &Value> = at(p, "GlobalSecondaryIndexes")
        .as_sequence()
        .expect("GlobalSecondaryIndexes")
        .iter()
        .map(|g| (string(at(g, "IndexName")), g))
        .collect();
    assert_eq!(
        gsis.keys().copied().collect::<Vec<_>>(),
        ["gsi1", "gsi2", "gsi3"]
    );
    for (name, gsi) in gsis {
        assert_eq!(
            keys(at(gsi, "KeySchema")),
            pair(&format!("{name}pk"), &format!("{name}sk")),
            "{name} keys"
        );
        assert_eq!(
            string(at(at(gsi, "Projection"), "ProjectionType")),
            "ALL",
            "{name} projection"
        );
    }

    let ttl = at(p, "TimeToLiveSpecification");
    assert_eq!(string(at(ttl, "AttributeName")), "expires_at");
    assert_eq!(at(ttl, "Enabled"), &Value::Bool(true));
    assert_eq!(
        at(
            at(p, "PointInTimeRecoverySpecification"),
            "PointInTimeRecoveryEnabled"
        ),
        &Value::Bool(true)
    );
    // Encrypted at rest either way: the AWS-owned key by default, a named
    // customer key when given (see a_flood_is_bounded_...).
    let (tag, args) = intrinsic(at(p, "SSESpecification")).expect("SSESpecification is an If");
    assert_eq!(tag, "If");
    assert_eq!(at(&args[1], "SSEEnabled"), &Value::Bool(true));
    assert!(is_ref(at(&args[1], "KMSMasterKeyId"), "TableKmsKeyArn"));
    let (tag, _) = intrinsic(at(p, "DeletionProtectionEnabled")).expect("configurable");
    assert_eq!(tag, "If", "deletion protection follows a parameter");
}

#[test]
fn every_function_is_an_arm64_cargo_lambda_bootstrap() {
    let t = template();
    let declared: BTreeSet<&str> = resources_of_type(&t, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let want: BTreeSet<&str> = FUNCTIONS.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(declared, want, "the seven functions, no more");

    let mut binaries = BTreeSet::new();
    for (id, dir, binary) in FUNCTIONS {
        assert_eq!(
            string(function_prop(&t, id, "Runtime")),
            "provided.al2023",
            "{id}"
        );
        assert_eq!(
            function_prop(&t, id, "Architectures"),
            &Value::Sequence(vec![Value::String("arm64".into())]),
            "{id}"
        );
        assert_eq!(
            string(function_prop(&t, id, "Handler")),
            "bootstrap",
            "{id}"
        );
        let meta = at(resource(&t, id), "Metadata");
        assert_eq!(string(at(meta, "BuildMethod")), "rust-cargolambda", "{id}");
        assert_eq!(
            string(at(at(meta, "BuildProperties"), "Binary")),
            binary,
            "{id}"
        );
        assert!(binaries.insert(binary), "{binary} used twice");

        // CodeUri is relative to the template; it must be the crate that
        // declares the binary.
        let code_uri = string(at(props(&t, id), "CodeUri"));
        assert_eq!(code_uri, format!("../functions/{dir}"), "{id}");
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../infra")
            .join(code_uri)
            .join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|e| panic!("{id}: {}: {e}", manifest.display()));
        assert!(
            text.contains(&format!("name = \"{binary}\"")),
            "{} declares no binary {binary}",
            manifest.display()
        );

        let logging = at(props(&t, id), "LoggingConfig");
        assert_eq!(string(at(logging, "LogFormat")), "JSON", "{id}");
    }
}

#[test]
fn sync_consumes_the_ingest_queue_reporting_failed_messages_only() {
    let t = template();
    let mappings: Vec<&Value> = resources_of_type(&t, "AWS::Lambda::EventSourceMapping")
        .into_iter()
        .map(|(_, r)| at(r, "Properties"))
        .filter(|p| is_ref(at(p, "FunctionName"), "SyncFunction"))
        .collect();
    assert_eq!(mappings.len(), 1, "one event source for the sync function");
    let esm = mappings[0];
    assert!(is_get_att(at(esm, "EventSourceArn"), "IngestQueue.Arn"));
    assert_eq!(
        at(esm, "FunctionResponseTypes"),
        &Value::Sequence(vec![Value::String("ReportBatchItemFailures".into())])
    );
    assert!(is_ref(at(esm, "BatchSize"), "SyncBatchSize"));
    assert!(is_ref(
        at(esm, "MaximumBatchingWindowInSeconds"),
        "SyncBatchWindowSeconds"
    ));
    assert!(is_ref(
        at(at(esm, "ScalingConfig"), "MaximumConcurrency"),
        "SyncMaxConcurrency"
    ));
    assert_eq!(
        number(at(parameter(&t, "SyncMaxConcurrency"), "Default")),
        2
    );

    // No SAM SQS event besides: it would attach a managed policy that can
    // read every queue of the account.
    for (id, _, _) in FUNCTIONS {
        if let Some(events) = opt(props(&t, id), "Events").and_then(Value::as_mapping) {
            for (name, event) in events {
                assert_ne!(string(at(event, "Type")), "SQS", "{id}.{name:?}");
            }
        }
    }
}

#[test]
fn visibility_timeout_is_at_least_six_sync_timeouts_for_every_allowed_value() {
    let t = template();
    assert!(is_ref(
        at(props(&t, "SyncFunction"), "Timeout"),
        "SyncTimeout"
    ));
    let visibility = at(props(&t, "IngestQueue"), "VisibilityTimeout");
    let (tag, args) = intrinsic(visibility).expect("FindInMap");
    assert_eq!(tag, "FindInMap");
    let args = args.as_sequence().expect("FindInMap arguments");
    assert!(is_ref(&args[1], "SyncTimeout"), "keyed by the sync timeout");
    let table = at(at(&t, "Mappings"), string(&args[0]));
    let field = string(&args[2]);

    let param = parameter(&t, "SyncTimeout");
    let allowed: Vec<u64> = at(param, "AllowedValues")
        .as_sequence()
        .expect("AllowedValues")
        .iter()
        .map(number)
        .collect();
    assert!(allowed.contains(&number(at(param, "Default"))));
    for timeout in allowed {
        let vis = number(at(at(table, &timeout.to_string()), field));
        assert!(
            vis >= 6 * timeout,
            "timeout {timeout}: visibility {vis} < 6x"
        );
        assert!(vis <= 43_200, "SQS allows at most 12 hours, got {vis}");
        assert!(timeout <= 900, "Lambda allows at most 900 s");
    }
}

#[test]
fn failed_messages_retry_at_least_five_times_then_wait_fourteen_days() {
    let t = template();
    let ingest = props(&t, "IngestQueue");
    let redrive = at(ingest, "RedrivePolicy");
    assert!(is_get_att(
        at(redrive, "deadLetterTargetArn"),
        "DeadLetterQueue.Arn"
    ));
    assert!(is_ref(at(redrive, "maxReceiveCount"), "MaxReceiveCount"));
    let param = parameter(&t, "MaxReceiveCount");
    assert!(number(at(param, "MinValue")) >= 5);
    assert!(number(at(param, "Default")) >= 5);

    let dlq = props(&t, "DeadLetterQueue");
    assert_eq!(number(at(dlq, "MessageRetentionPeriod")), 1_209_600);
    for q in [ingest, dlq] {
        assert_eq!(at(q, "SqsManagedSseEnabled"), &Value::Bool(true));
    }

    let alarm = props(&t, "DeadLetterAlarm");
    assert_eq!(
        string(at(alarm, "MetricName")),
        "ApproximateNumberOfMessagesVisible"
    );
    assert_eq!(number(at(alarm, "Threshold")), 0);
    assert_eq!(
        string(at(alarm, "ComparisonOperator")),
        "GreaterThanThreshold"
    );
    let dims = at(alarm, "Dimensions").as_sequence().expect("Dimensions");
    assert!(dims
        .iter()
        .any(|d| is_get_att(at(d, "Value"), "DeadLetterQueue.QueueName")));
}

#[test]
fn every_function_gets_the_timepost_environment() {
    let t = template();
    let globals = at(
        at(at(at(&t, "Globals"), "Function"), "Environment"),
        "Variables",
    );
    for (var, tag, target) in ENVIRONMENT {
        let value = at(globals, var);
        assert!(
            matches!(intrinsic(value), Some((t, a)) if t == tag && a.as_str() == Some(target)),
            "{var} = {value:?}, want !{tag} {target}"
        );
    }
    // A function may add variables, never replace the shared ones.
    for (id, _, _) in FUNCTIONS {
        if let Some(vars) = opt(props(&t, id), "Environment").map(|e| at(e, "Variables")) {
            for (var, _, _) in ENVIRONMENT {
                assert!(opt(vars, var).is_none(), "{id} overrides {var}");
            }
        }
    }
    let admin = at(at(props(&t, "AdminFunction"), "Environment"), "Variables");
    assert!(is_ref(at(admin, "TIMEPOST_JWT_ROLE_CLAIM"), "JwtRoleClaim"));
    assert_eq!(
        string(at(parameter(&t, "JwtRoleClaim"), "Default")),
        "custom:timepost_role"
    );
    assert_eq!(
        string(at(parameter(&t, "SecretPrefix"), "Default")),
        "timepost/"
    );
    assert_eq!(
        string(at(parameter(&t, "ConfigKey"), "Default")),
        "config/timepost.toml"
    );
}

/// Every IAM statement written in the template: (resource id, statement).
fn statements(t: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (id, _, _) in FUNCTIONS {
        let policies = at(props(t, id), "Policies")
            .as_sequence()
            .expect("Policies list");
        for p in policies {
            if let Some(list) = opt(p, "Statement").and_then(Value::as_sequence) {
                out.extend(
                    list.iter()
                        .map(|s| (id.to_string(), conditional(s).clone())),
                );
            }
        }
    }
    for ty in [
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
    ] {
        for (id, r) in resources_of_type(t, ty) {
            let p = at(r, "Properties");
            let mut docs: Vec<&Value> = opt(p, "PolicyDocument").into_iter().collect();
            if let Some(list) = opt(p, "Policies").and_then(Value::as_sequence) {
                docs.extend(list.iter().map(|x| at(x, "PolicyDocument")));
            }
            for d in docs {
                for s in at(d, "Statement").as_sequence().expect("Statement") {
                    out.push((id.to_string(), s.clone()));
                }
            }
        }
    }
    out
}

/// A statement written as `!If [condition, statement, !Ref AWS::NoValue]`
/// is the statement it grants when the condition holds.
fn conditional(statement: &Value) -> &Value {
    match intrinsic(statement) {
        Some((tag, args)) if tag == "If" => {
            assert!(is_ref(&args[2], "AWS::NoValue"), "{statement:?}");
            &args[1]
        }
        _ => statement,
    }
}

/// The secret names (after the prefix) a statement names.
fn secret_names(statement: &Value) -> BTreeSet<String> {
    let resources: Vec<&Value> = match at(statement, "Resource") {
        Value::Sequence(list) => list.iter().collect(),
        one => vec![one],
    };
    resources
        .into_iter()
        .map(|r| {
            let (tag, arg) = intrinsic(r).expect("a secret ARN is a !Sub");
            assert_eq!(tag, "Sub");
            let arn = string(arg);
            arn.strip_prefix(SECRETS_ARN_PREFIX)
                .unwrap_or_else(|| panic!("{arn} is not under SecretPrefix"))
                .to_string()
        })
        .collect()
}

fn actions(statement: &Value) -> Vec<String> {
    match at(statement, "Action") {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(list) => list.iter().map(|a| string(a).to_string()).collect(),
        other => panic!("Action {other:?}"),
    }
}

#[test]
fn no_iam_statement_grants_on_every_resource() {
    let t = template();
    let all = statements(&t);
    assert!(!all.is_empty());
    for (id, s) in &all {
        let resources: Vec<&Value> = match at(s, "Resource") {
            Value::Sequence(list) => list.iter().collect(),
            one => vec![one],
        };
        if resources.iter().any(|r| r.as_str() == Some("*")) {
            let sid = opt(s, "Sid").and_then(Value::as_str).unwrap_or("");
            assert!(
                WILDCARD_RESOURCE_ALLOWED
                    .iter()
                    .any(|(rid, rsid, _)| rid == id && *rsid == sid),
                "{id} statement {sid:?} grants on Resource \"*\""
            );
        }
        if actions(s).iter().any(|a| a.starts_with("secretsmanager:")) {
            // Names a secret of this stack, never every secret under the
            // prefix.
            for name in secret_names(s) {
                assert!(name != "*" && !name.is_empty(), "{id}: {name}");
            }
        }
    }
}

/// What a function may do: SAM policy templates as `Template:Target` and the
/// actions of its own statements.
fn permissions(t: &Value, id: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in at(props(t, id), "Policies")
        .as_sequence()
        .expect("Policies")
    {
        let map = p.as_mapping().expect("policy entry");
        for (name, arg) in map {
            let name = string(name);
            if name == "Statement" {
                for s in arg.as_sequence().expect("statements") {
                    out.extend(actions(conditional(s)));
                }
            } else {
                let target = arg
                    .as_mapping()
                    .and_then(|m| m.values().next())
                    .map(|v| match intrinsic(v) {
                        Some((_, a)) => string(a).trim_end_matches(".QueueName").to_string(),
                        None => string(v).to_string(),
                    })
                    .unwrap_or_default();
                out.insert(format!("{name}:{target}"));
            }
        }
    }
    out
}

#[test]
fn each_function_holds_only_the_permissions_it_needs() {
    let t = template();
    let set =
        |items: &[&str]| -> BTreeSet<String> { items.iter().map(|s| s.to_string()).collect() };
    assert_eq!(
        permissions(&t, "WebhookFunction"),
        set(&[
            "SQSSendMessagePolicy:IngestQueue",
            "dynamodb:GetItem",
            "dynamodb:Query",
            "kms:Decrypt",
            "kms:GenerateDataKey",
            "s3:GetObject",
            "s3:GetObjectVersion",
            "s3:ListBucketVersions",
            "secretsmanager:GetSecretValue",
        ])
    );
    // Poller and sync: the table's item actions the code calls (no Scan,
    // no table administration); sync reads only the rules file.
    let items = [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:TransactWriteItems",
        "dynamodb:ConditionCheckItem",
    ];
    let kms = ["kms:Decrypt", "kms:GenerateDataKey"];
    let with = |extra: &[&str]| -> BTreeSet<String> {
        items
            .iter()
            .chain(kms.iter())
            .chain(extra.iter())
            .map(|s| s.to_string())
            .collect()
    };
    assert_eq!(
        permissions(&t, "PollerFunction"),
        with(&[
            "SQSSendMessagePolicy:IngestQueue",
            "s3:GetObject",
            "secretsmanager:GetSecretValue",
        ])
    );
    assert_eq!(
        permissions(&t, "SyncFunction"),
        with(&[
            "SQSPollerPolicy:IngestQueue",
            "SQSSendMessagePolicy:DeadLetterQueue",
            "s3:GetObject",
            "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue",
        ])
    );
    // Archive: reads the table and writes its audit records (no Scan, no
    // delete, no transactions); lists the dead letters without deleting
    // them; reads the rules file; lists, reads and writes snapshots, and
    // nothing that deletes an object or changes retention or the bucket.
    assert_eq!(
        permissions(&t, "ArchiveFunction"),
        set(&[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
            "kms:Decrypt",
            "kms:GenerateDataKey",
            "sqs:ReceiveMessage",
            "sqs:ChangeMessageVisibility",
            "s3:GetObject",
            "s3:ListBucket",
            "s3:PutObject",
            "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue",
        ])
    );
    // Alerts: reads the table and keeps its alert states (no Scan, no
    // delete); counts the dead letters without deleting them; reads the
    // rules file; lists, reads and writes exports/ only; publishes to its
    // topic.
    assert_eq!(
        permissions(&t, "AlertsFunction"),
        set(&[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
            "kms:Decrypt",
            "kms:GenerateDataKey",
            "sqs:ReceiveMessage",
            "sqs:ChangeMessageVisibility",
            "s3:GetObject",
            "s3:ListBucket",
            "s3:PutObject",
            "secretsmanager:GetSecretValue",
            "sns:Publish",
        ])
    );
    // Reconcile: reads the table, writes a run (counter, run item, its
    // breaks) and the pacing item; no Scan, no DeleteItem, no
    // transactions; reads the rules file only.
    assert_eq!(
        permissions(&t, "ReconcileFunction"),
        set(&[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
            "dynamodb:BatchWriteItem",
            "kms:Decrypt",
            "kms:GenerateDataKey",
            "s3:GetObject",
            "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue",
        ])
    );
    assert_eq!(
        permissions(&t, "AdminFunction"),
        set(&[
            "DynamoDBCrudPolicy:Table",
            "SQSSendMessagePolicy:IngestQueue",
            "SQSPollerPolicy:IngestQueue",
            "SQSSendMessagePolicy:DeadLetterQueue",
            "SQSPollerPolicy:DeadLetterQueue",
            "kms:Decrypt",
            "kms:GenerateDataKey",
            "s3:GetObject",
            "s3:ListBucket",
            "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue",
        ])
    );
}

/// No function may delete an object, change the bucket's lifecycle, its
/// policy or an object's retention, or hold SAM's S3 CRUD policy (which
/// grants both): archives stay as they were written.
#[test]
fn no_function_can_delete_archives_or_change_the_bucket() {
    let t = template();
    for (id, _, _) in FUNCTIONS {
        for p in permissions(&t, id) {
            assert!(
                !p.starts_with("S3CrudPolicy")
                    && !p.starts_with("S3FullAccessPolicy")
                    && !matches!(
                        p.as_str(),
                        "s3:DeleteObject"
                            | "s3:DeleteObjectVersion"
                            | "s3:PutLifecycleConfiguration"
                            | "s3:PutBucketPolicy"
                            | "s3:PutObjectRetention"
                            | "s3:BypassGovernanceRetention"
                            | "s3:*"
                    ),
                "{id} holds {p}"
            );
        }
    }
}

/// (method, path, authorizer) of a function's HTTP API events.
fn routes(t: &Value, id: &str) -> BTreeSet<(String, String, String)> {
    at(props(t, id), "Events")
        .as_mapping()
        .expect("Events")
        .values()
        .filter(|e| string(at(e, "Type")) == "HttpApi")
        .map(|e| {
            let p = at(e, "Properties");
            assert!(is_ref(at(p, "ApiId"), "HttpApi"));
            (
                string(at(p, "Method")).to_string(),
                string(at(p, "Path")).to_string(),
                string(at(at(p, "Auth"), "Authorizer")).to_string(),
            )
        })
        .collect()
}

#[test]
fn webhooks_are_open_the_api_needs_a_jwt_and_the_browser_paths_sign_in_themselves() {
    let t = template();
    let route = |m: &str, p: &str, a: &str| (m.to_string(), p.to_string(), a.to_string());
    assert_eq!(
        routes(&t, "WebhookFunction"),
        [
            route("POST", "/webhooks/clockify", "NONE"),
            route("POST", "/webhooks/toggl", "NONE"),
        ]
        .into()
    );
    assert_eq!(
        routes(&t, "AdminFunction"),
        [
            route("ANY", "/api/{proxy+}", "JwtAuthorizer"),
            route("GET", "/openapi.json", "JwtAuthorizer"),
            // A browser carries no bearer token: the console and its
            // sign-in are the function's own (session cookie, OIDC).
            route("ANY", "/console", "NONE"),
            route("ANY", "/console/{proxy+}", "NONE"),
            route("GET", "/auth/{proxy+}", "NONE"),
        ]
        .into()
    );
    let auth = at(props(&t, "HttpApi"), "Auth");
    assert_eq!(string(at(auth, "DefaultAuthorizer")), "JwtAuthorizer");
    let jwt = at(
        at(at(auth, "Authorizers"), "JwtAuthorizer"),
        "JwtConfiguration",
    );
    // The parameters when given, else the created pool and its client for
    // programs.
    let issuer = if_branches(at(jwt, "issuer"), "IssuerGiven");
    assert!(is_ref(issuer.0, "JwtIssuer"));
    let pool = if_branches(issuer.1, "CreatePool");
    assert_eq!(sub_text(pool.0), COGNITO_ISSUER);
    assert!(is_ref(pool.1, "JwtIssuer"));
    let audience = at(jwt, "audience").as_sequence().expect("audience list");
    assert_eq!(audience.len(), 1);
    let aud = if_branches(&audience[0], "AudienceGiven");
    assert!(is_ref(aud.0, "JwtAudience"));
    let client = if_branches(aud.1, "CreatePool");
    assert!(is_ref(client.0, "ApiUserPoolClient"));
    assert!(is_ref(client.1, "JwtAudience"));
}

/// Cognito's issuer URL for the created pool.
const COGNITO_ISSUER: &str = "https://cognito-idp.${AWS::Region}.${AWS::URLSuffix}/${UserPool}";

/// The (then, else) of `!If [condition, then, else]`.
fn if_branches<'a>(value: &'a Value, condition: &str) -> (&'a Value, &'a Value) {
    match intrinsic(value) {
        Some((tag, args)) if tag == "If" => {
            let args = args.as_sequence().expect("If arguments");
            assert_eq!(args[0].as_str(), Some(condition), "{value:?}");
            (&args[1], &args[2])
        }
        _ => panic!("expected !If [{condition}, ...], got {value:?}"),
    }
}

/// The text of a `!Sub "..."`.
fn sub_text(value: &Value) -> &str {
    match intrinsic(value) {
        Some((tag, arg)) if tag == "Sub" => string(arg),
        _ => panic!("expected !Sub, got {value:?}"),
    }
}

#[test]
fn the_stack_creates_a_user_pool_with_the_role_attribute_unless_told_not_to() {
    let t = template();
    let p = parameter(&t, "CreateUserPool");
    assert_eq!(string(at(p, "Default")), "true");
    for (name, default) in [
        ("JwtIssuer", ""),
        ("JwtAudience", ""),
        ("ConsoleClientId", ""),
        ("ConsoleLogoutUrl", ""),
    ] {
        assert_eq!(
            string(at(parameter(&t, name), "Default")),
            default,
            "{name}"
        );
    }
    // Without a pool of its own, the stack must be told the provider.
    let rule = at(at(&t, "Rules"), "ExistingProviderIsNamed");
    let when = intrinsic(at(rule, "RuleCondition")).expect("a condition");
    assert_eq!(when.0, "Equals");
    assert!(is_ref(&when.1[0], "CreateUserPool"));
    assert_eq!(when.1[1].as_str(), Some("false"));
    let asserted: Vec<String> = at(rule, "Assertions")
        .as_sequence()
        .expect("assertions")
        .iter()
        .map(|a| string(at(a, "AssertDescription")).to_string())
        .collect();
    assert!(asserted.iter().any(|d| d.contains("JwtIssuer")));
    assert!(asserted.iter().any(|d| d.contains("JwtAudience")));

    let pool = resource(&t, "UserPool");
    assert_eq!(string(at(pool, "Type")), "AWS::Cognito::UserPool");
    assert_eq!(string(at(pool, "Condition")), "CreatePool");
    assert_eq!(string(at(pool, "DeletionPolicy")), "Retain");
    let props = at(pool, "Properties");
    // Only administrators create users: nobody signs themselves up.
    assert_eq!(
        at(
            at(props, "AdminCreateUserConfig"),
            "AllowAdminCreateUserOnly"
        )
        .as_bool(),
        Some(true)
    );
    let schema = at(props, "Schema").as_sequence().expect("schema");
    let role = schema
        .iter()
        .find(|a| string(at(a, "Name")) == "timepost_role")
        .expect("the role attribute");
    assert_eq!(string(at(role, "AttributeDataType")), "String");
    assert_eq!(at(role, "Mutable").as_bool(), Some(true));
    // Cognito puts a custom attribute in tokens as `custom:<name>`: the
    // claim the admin function reads by default, holding a role the code
    // knows (the longest name must fit the attribute).
    assert_eq!(
        string(at(parameter(&t, "JwtRoleClaim"), "Default")),
        timepost::oidc::DEFAULT_ROLE_CLAIM
    );
    assert_eq!(timepost::oidc::DEFAULT_ROLE_CLAIM, "custom:timepost_role");
    let max = number(at(at(role, "StringAttributeConstraints"), "MaxLength"));
    for r in timepost_web::auth::Role::ALL {
        assert!(r.as_str().len() as u64 <= max, "{}", r.as_str());
    }
}

#[test]
fn the_console_client_is_a_public_pkce_client_and_nobody_writes_their_own_role() {
    let t = template();
    let console = resource(&t, "ConsoleUserPoolClient");
    assert_eq!(string(at(console, "Condition")), "CreatePool");
    let c = at(console, "Properties");
    assert!(is_ref(at(c, "UserPoolId"), "UserPool"));
    assert_eq!(at(c, "GenerateSecret").as_bool(), Some(false));
    assert_eq!(
        at(c, "AllowedOAuthFlowsUserPoolClient").as_bool(),
        Some(true)
    );
    let list = |v: &Value| -> Vec<String> {
        v.as_sequence()
            .expect("a list")
            .iter()
            .map(|x| string(x).to_string())
            .collect()
    };
    assert_eq!(list(at(c, "AllowedOAuthFlows")), ["code"]);
    assert_eq!(
        list(at(c, "AllowedOAuthScopes")),
        ["openid", "email", "profile"]
    );
    let urls = |key: &str| -> Vec<String> {
        at(c, key)
            .as_sequence()
            .expect("URLs")
            .iter()
            .map(|u| sub_text(u).to_string())
            .collect()
    };
    let api = "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}";
    assert_eq!(urls("CallbackURLs"), [format!("{api}/auth/callback")]);
    assert_eq!(urls("LogoutURLs"), [format!("{api}/console/login")]);
    // Every app client may read the role (it must be in the ID token) and
    // none may write it: a user with the pool's API and their own access
    // token could otherwise make themselves admin.
    let clients = resources_of_type(&t, "AWS::Cognito::UserPoolClient");
    assert_eq!(clients.len(), 2);
    for (id, r) in clients {
        let p = at(r, "Properties");
        assert!(
            list(at(p, "ReadAttributes")).contains(&"custom:timepost_role".to_string()),
            "{id}"
        );
        let writes = list(at(p, "WriteAttributes"));
        assert!(
            writes.iter().all(|a| !a.starts_with("custom:")),
            "{id} writes {writes:?}"
        );
    }
}

#[test]
fn the_hosted_ui_domain_is_named_after_the_stack_id() {
    let t = template();
    let d = props(&t, "UserPoolDomain");
    assert!(is_ref(at(d, "UserPoolId"), "UserPool"));
    let (tag, args) = intrinsic(at(d, "Domain")).expect("an intrinsic");
    assert_eq!(tag, "Join");
    let parts = args.as_sequence().expect("Join arguments")[1]
        .as_sequence()
        .expect("parts");
    assert_eq!(parts[0].as_str(), Some("timepost-"));
    let (select, sargs) = intrinsic(&parts[1]).expect("Select");
    assert_eq!(select, "Select");
    assert_eq!(sargs[0].as_u64(), Some(2));
    let (split, spargs) = intrinsic(&sargs[1]).expect("Split");
    assert_eq!(split, "Split");
    assert_eq!(spargs[0].as_str(), Some("/"));
    assert!(is_ref(&spargs[1], "AWS::StackId"));
    // "timepost-" and a UUID: 45 characters, within Cognito's 63.
    assert!("timepost-".len() + 36 <= 63);
}

#[test]
fn the_admin_function_is_told_the_sign_in_provider_and_the_stack_says_where_it_is() {
    let t = template();
    let env = at(at(props(&t, "AdminFunction"), "Environment"), "Variables");
    let issuer = if_branches(at(env, "TIMEPOST_OIDC_ISSUER"), "CreatePool");
    assert_eq!(sub_text(issuer.0), COGNITO_ISSUER);
    assert!(is_ref(issuer.1, "JwtIssuer"));
    // The created client's id comes through a secret (the client names the
    // API, the API names the function); an existing one's directly.
    let id = if_branches(at(env, "TIMEPOST_OIDC_CLIENT_ID"), "CreatePool");
    assert_eq!(id.0.as_str(), Some(""));
    assert!(is_ref(id.1, "ConsoleClientId"));
    let secret = if_branches(at(env, "TIMEPOST_OIDC_CLIENT_ID_SECRET"), "CreatePool");
    assert_eq!(secret.0.as_str(), Some("console_client_id"));
    assert!(is_ref(at(env, "TIMEPOST_OIDC_ROLE_CLAIM"), "JwtRoleClaim"));
    let logout = if_branches(at(env, "TIMEPOST_OIDC_LOGOUT_URL"), "CreatePool");
    assert_eq!(
        sub_text(logout.0),
        "https://${UserPoolDomain}.auth.${AWS::Region}.amazoncognito.com/logout"
    );
    let s = resource(&t, "ConsoleClientIdSecret");
    assert_eq!(string(at(s, "Type")), "AWS::SecretsManager::Secret");
    assert_eq!(string(at(s, "Condition")), "CreatePool");
    assert_eq!(
        sub_text(at(at(s, "Properties"), "Name")),
        "${SecretPrefix}console_client_id"
    );
    assert!(is_ref(
        at(at(s, "Properties"), "SecretString"),
        "ConsoleUserPoolClient"
    ));
    // The function only reads it.
    let read = statements(&t)
        .into_iter()
        .filter(|(id, _)| id == "AdminFunction")
        .map(|(_, s)| s)
        .filter(|s| actions(s).iter().any(|a| a.starts_with("secretsmanager:")))
        .find(|s| secret_names(s).contains("console_client_id*"))
        .expect("a statement naming the client id secret");
    assert_eq!(actions(&read), ["secretsmanager:GetSecretValue"]);

    let outputs = at(&t, "Outputs");
    for (name, cond) in [
        ("UserPoolId", Some("CreatePool")),
        ("SignInIssuer", Some("CreatePool")),
        ("ConsoleClientId", Some("CreatePool")),
        ("ApiClientId", Some("CreatePool")),
        ("HostedUiUrl", Some("CreatePool")),
        ("ConsoleUrl", None),
    ] {
        let o = at(outputs, name);
        assert_eq!(opt(o, "Condition").and_then(Value::as_str), cond, "{name}");
    }
    assert_eq!(
        sub_text(at(at(outputs, "SignInIssuer"), "Value")),
        COGNITO_ISSUER
    );
    assert!(is_ref(
        at(at(outputs, "ConsoleClientId"), "Value"),
        "ConsoleUserPoolClient"
    ));
}

#[test]
fn the_poller_is_scheduled_per_source_with_explicit_input() {
    let t = template();
    let events = at(props(&t, "PollerFunction"), "Events");
    for (event, source, schedule, enabled) in [
        (
            "HarvestPoll",
            "harvest",
            "HarvestPollSchedule",
            "HarvestPollOn",
        ),
        ("TogglPoll", "toggl", "TogglPollSchedule", "TogglPollOn"),
    ] {
        let e = at(events, event);
        assert_eq!(string(at(e, "Type")), "ScheduleV2");
        let p = at(e, "Properties");
        let input: serde_json::Value =
            serde_json::from_str(string(at(p, "Input"))).expect("Input is JSON");
        assert_eq!(input, serde_json::json!({ "source": source }));
        assert!(is_ref(at(p, "ScheduleExpression"), schedule));
        let (tag, args) = intrinsic(at(p, "State")).expect("State follows a parameter");
        assert_eq!(tag, "If");
        assert_eq!(args[0].as_str(), Some(enabled));
    }
}

#[test]
fn every_function_alarms_on_errors_and_throttles() {
    let t = template();
    let alarms: Vec<&Value> = resources_of_type(&t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(_, r)| at(r, "Properties"))
        .collect();
    for (id, _, _) in FUNCTIONS {
        for metric in ["Errors", "Throttles"] {
            let found = alarms.iter().any(|a| {
                opt(a, "MetricName").and_then(Value::as_str) == Some(metric)
                    && at(a, "Dimensions")
                        .as_sequence()
                        .is_some_and(|d| d.iter().any(|d| is_ref(at(d, "Value"), id)))
            });
            assert!(found, "no {metric} alarm for {id}");
        }
    }
    for a in alarms {
        let actions = at(a, "AlarmActions").as_sequence().expect("AlarmActions");
        assert!(actions.iter().any(|x| is_ref(x, "AlarmTopic")));
    }
    let sub = resource(&t, "AlarmEmailSubscription");
    assert_eq!(string(at(sub, "Condition")), "HasAlarmEmail");
}

#[test]
fn every_parameter_is_described() {
    let t = template();
    for (name, p) in at(&t, "Parameters").as_mapping().expect("Parameters") {
        let d = opt(p, "Description").and_then(Value::as_str).unwrap_or("");
        assert!(d.len() >= 20, "parameter {name:?} needs a description");
    }
}

/// An alarm on one SQS metric of one queue: (threshold, has OK actions).
fn queue_alarms(t: &Value, metric: &str, queue: &str) -> Vec<(u64, bool)> {
    resources_of_type(t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(_, r)| at(r, "Properties"))
        .filter(|a| {
            opt(a, "MetricName").and_then(Value::as_str) == Some(metric)
                && at(a, "Dimensions").as_sequence().is_some_and(|d| {
                    d.iter()
                        .any(|d| is_get_att(at(d, "Value"), &format!("{queue}.QueueName")))
                })
        })
        .map(|a| (number(at(a, "Threshold")), opt(a, "OKActions").is_some()))
        .collect()
}

#[test]
fn alarms_keep_telling_while_exceptions_wait() {
    let t = template();
    // Each new arrival in the dead-letter queue notifies again: the growth
    // of the visible count (DIFF), not only its first rise above zero.
    let new = props(&t, "NewExceptionsAlarm");
    let metrics = at(new, "Metrics").as_sequence().expect("Metrics");
    let waiting = metrics
        .iter()
        .find(|m| opt(m, "MetricStat").is_some())
        .expect("a metric");
    let stat = at(at(waiting, "MetricStat"), "Metric");
    assert_eq!(
        string(at(stat, "MetricName")),
        "ApproximateNumberOfMessagesVisible"
    );
    assert!(is_get_att(
        at(&at(stat, "Dimensions")[0], "Value"),
        "DeadLetterQueue.QueueName"
    ));
    let id = string(at(waiting, "Id"));
    assert!(metrics
        .iter()
        .any(|m| opt(m, "Expression").and_then(Value::as_str)
            == Some(format!("DIFF({id})").as_str())
            && opt(m, "ReturnData").and_then(Value::as_bool) == Some(true)));
    assert_eq!(number(at(new, "Threshold")), 0);

    // An exception that waits is told again after a day and a week, and
    // before SQS's 14-day retention deletes it.
    let ages: BTreeSet<u64> = queue_alarms(&t, "ApproximateAgeOfOldestMessage", "DeadLetterQueue")
        .into_iter()
        .map(|(threshold, _)| threshold)
        .collect();
    let retention = number(at(props(&t, "DeadLetterQueue"), "MessageRetentionPeriod"));
    assert!(ages.contains(&86_400), "{ages:?}");
    assert!(ages.contains(&604_800), "{ages:?}");
    assert!(
        ages.iter()
            .any(|a| *a < retention && retention - a >= 86_400),
        "no alarm at least a day before the dead-letter queue's retention ends: {ages:?}"
    );

    // Entries that wait to be posted, and server errors of the router.
    let backlog = queue_alarms(&t, "ApproximateAgeOfOldestMessage", "IngestQueue");
    assert_eq!(backlog.len(), 1);
    assert!(backlog[0].1, "the backlog alarm says when it clears");
    let api = props(&t, "ApiServerErrorsAlarm");
    assert_eq!(string(at(api, "Namespace")), "AWS/ApiGateway");
    assert_eq!(string(at(api, "MetricName")), "5xx");
    assert!(is_ref(at(&at(api, "Dimensions")[0], "Value"), "HttpApi"));
}

#[test]
fn a_flood_is_bounded_and_every_name_fits_any_stack_name() {
    let t = template();
    // The HTTP API throttles every route.
    let routes = at(props(&t, "HttpApi"), "DefaultRouteSettings");
    assert!(is_ref(
        at(routes, "ThrottlingRateLimit"),
        "ApiThrottleRateLimit"
    ));
    assert!(is_ref(
        at(routes, "ThrottlingBurstLimit"),
        "ApiThrottleBurstLimit"
    ));
    // The open webhook function can be given a reserved concurrency.
    let (tag, args) = intrinsic(at(
        props(&t, "WebhookFunction"),
        "ReservedConcurrentExecutions",
    ))
    .expect("If");
    assert_eq!(tag, "If");
    assert_eq!(args[0].as_str(), Some("WebhookReserved"));
    assert!(is_ref(&args[1], "WebhookReservedConcurrency"));
    // A failed poll is not retried: the next schedule catches up.
    for event in ["HarvestPoll", "TogglPoll"] {
        let e = at(at(props(&t, "PollerFunction"), "Events"), event);
        let retry = at(at(e, "Properties"), "RetryPolicy");
        assert_eq!(number(at(retry, "MaximumRetryAttempts")), 0, "{event}");
    }
    // Only the ingest queue may use the dead-letter queue.
    let allow = at(props(&t, "DeadLetterQueue"), "RedriveAllowPolicy");
    assert_eq!(string(at(allow, "redrivePermission")), "byQueue");
    // No name is built from the stack name (function, schedule, log group
    // and queue names have limits a long stack name would break).
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml"),
    )
    .unwrap();
    assert!(
        !text.contains("${AWS::StackName}"),
        "a resource name is built from the stack name"
    );
    // The table uses the AWS-owned key unless a customer key is named.
    let (tag, args) =
        intrinsic(at(props(&t, "Table"), "SSESpecification")).expect("SSESpecification is an If");
    assert_eq!(tag, "If");
    assert_eq!(args[0].as_str(), Some("TableCustomerKey"));
    assert!(is_ref(&args[2], "AWS::NoValue"));
}

#[test]
fn sam_builds_are_never_cached() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samconfig.toml");
    let config: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let build = &config["default"]["build"]["parameters"];
    // SAM's cache key covers only functions/<name>/: a cached build keeps a
    // stale binary after a change in the library or Cargo.lock.
    assert_ne!(
        build.get("cached").and_then(toml::Value::as_bool),
        Some(true)
    );
}

#[test]
fn each_function_reads_only_its_own_secrets() {
    let t = template();
    let all = statements(&t);
    for (id, names, writes) in SECRETS {
        let mut granted = BTreeSet::new();
        let mut actions_seen = BTreeSet::new();
        for (_, s) in all.iter().filter(|(sid, _)| sid == id) {
            let acts = actions(s);
            if acts.iter().any(|a| a.starts_with("secretsmanager:")) {
                granted.extend(secret_names(s));
                actions_seen.extend(acts);
            }
        }
        let want: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
        assert_eq!(granted, want, "{id}");
        assert_eq!(
            actions_seen.contains("secretsmanager:PutSecretValue"),
            writes,
            "{id}"
        );
    }
    // The webhook, open to the internet, cannot read a ledger credential.
    let webhook = SECRETS[0].1;
    assert!(webhook
        .iter()
        .all(|n| !n.starts_with("qbo") && !n.starts_with("xero")));
}

#[test]
fn a_customer_table_key_is_granted_to_exactly_the_roles_that_use_the_table() {
    let t = template();
    for (id, _, _) in FUNCTIONS {
        let keyed: Vec<&Value> = at(props(&t, id), "Policies")
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|p| opt(p, "Statement").and_then(Value::as_sequence))
            .flatten()
            .filter(|s| matches!(intrinsic(s), Some((tag, args)) if tag == "If" && args[0].as_str() == Some("TableCustomerKey")))
            .collect();
        assert_eq!(keyed.len(), 1, "{id}: one conditional key statement");
        let s = conditional(keyed[0]);
        assert!(is_ref(at(s, "Resource"), "TableKmsKeyArn"), "{id}");
        assert!(actions(s).contains(&"kms:Decrypt".to_string()), "{id}");
    }
}

/// The webhook may list the versions of the rules file only (the bucket's
/// `s3:prefix` condition), and read those versions, so it can start on the
/// last rules file that loads; no other function reads old versions.
#[test]
fn only_the_webhook_reads_earlier_rules_files_and_only_those() {
    let t = template();
    let all = statements(&t);
    let versions: Vec<&(String, Value)> = all
        .iter()
        .filter(|(_, s)| {
            actions(s)
                .iter()
                .any(|a| a == "s3:ListBucketVersions" || a == "s3:GetObjectVersion")
        })
        .collect();
    assert!(versions.iter().all(|(id, _)| id == "WebhookFunction"));
    let list = versions
        .iter()
        .map(|(_, s)| s)
        .find(|s| actions(s).iter().any(|a| a == "s3:ListBucketVersions"))
        .expect("a ListBucketVersions statement");
    assert!(is_get_att(at(list, "Resource"), "Bucket.Arn"));
    let prefix = at(at(at(list, "Condition"), "StringEquals"), "s3:prefix");
    assert!(is_ref(prefix, "ConfigKey"), "{prefix:?}");
    let read = versions
        .iter()
        .map(|(_, s)| s)
        .find(|s| actions(s).iter().any(|a| a == "s3:GetObjectVersion"))
        .expect("a GetObjectVersion statement");
    let resource = intrinsic(at(read, "Resource")).expect("!Sub");
    assert_eq!(string(resource.1), "${Bucket.Arn}/${ConfigKey}");
}

/// The statement of `id` with Sid `sid`.
fn statement<'a>(t: &'a Value, id: &str, sid: &str) -> &'a Value {
    at(props(t, id), "Policies")
        .as_sequence()
        .expect("Policies")
        .iter()
        .filter_map(|p| opt(p, "Statement").and_then(Value::as_sequence))
        .flatten()
        .map(conditional)
        .find(|s| opt(s, "Sid").and_then(Value::as_str) == Some(sid))
        .unwrap_or_else(|| panic!("{id} has no statement {sid}"))
}

#[test]
fn the_archive_function_runs_on_its_schedule_without_retries() {
    let t = template();
    let p = props(&t, "ArchiveFunction");
    let events = at(p, "Events").as_mapping().expect("Events");
    assert_eq!(events.len(), 1, "one schedule");
    let e = at(at(p, "Events"), "ArchiveRun");
    assert_eq!(string(at(e, "Type")), "ScheduleV2");
    let sp = at(e, "Properties");
    assert!(is_ref(at(sp, "ScheduleExpression"), "ArchiveSchedule"));
    let input: serde_json::Value =
        serde_json::from_str(string(at(sp, "Input"))).expect("Input is JSON");
    assert_eq!(input, serde_json::json!({}));
    assert_eq!(number(at(at(sp, "RetryPolicy"), "MaximumRetryAttempts")), 0);
    assert_eq!(
        string(at(parameter(&t, "ArchiveSchedule"), "Default")),
        "rate(1 day)"
    );
    let logs = at(at(p, "LoggingConfig"), "LogGroup");
    assert!(is_ref(logs, "ArchiveLogGroup"));
    assert!(is_ref(
        at(props(&t, "ArchiveLogGroup"), "RetentionInDays"),
        "LogRetentionDays"
    ));
    // The function is told where snapshots go: the Object Lock bucket when
    // a lock mode is set, else the stack's bucket.
    let vars = at(at(p, "Environment"), "Variables");
    let (tag, args) = intrinsic(at(vars, "TIMEPOST_ARCHIVE_BUCKET")).expect("!If");
    assert_eq!(tag, "If");
    assert_eq!(args[0].as_str(), Some("ArchiveLocked"));
    assert!(is_ref(&args[1], "ArchiveBucket"));
    assert!(is_ref(&args[2], "Bucket"));
}

#[test]
fn the_archive_function_lists_reads_and_writes_only_under_archive_and_deletes_nothing() {
    let t = template();
    let all = statements(&t);
    let archive: Vec<&Value> = all
        .iter()
        .filter(|(id, _)| id == "ArchiveFunction")
        .map(|(_, s)| s)
        .collect();
    for s in &archive {
        for a in actions(s) {
            assert!(
                !a.contains("Delete")
                    && !a.contains("Retention")
                    && !a.contains("LegalHold")
                    && !a.contains("Lifecycle")
                    && !a.contains("BucketPolicy")
                    && !a.contains("ObjectLockConfiguration")
                    && a != "dynamodb:Scan"
                    && !a.ends_with('*'),
                "ArchiveFunction may {a}"
            );
        }
    }
    let list = statement(&t, "ArchiveFunction", "ArchiveList");
    assert_eq!(actions(list), ["s3:ListBucket"]);
    let (tag, args) = intrinsic(at(list, "Resource")).expect("!If");
    assert_eq!(tag, "If");
    assert_eq!(args[0].as_str(), Some("ArchiveLocked"));
    assert!(is_get_att(&args[1], "ArchiveBucket.Arn"));
    assert!(is_get_att(&args[2], "Bucket.Arn"));
    let prefix = at(at(at(list, "Condition"), "StringLike"), "s3:prefix");
    assert_eq!(string(prefix), "archive/*");

    let rw = statement(&t, "ArchiveFunction", "ArchiveReadWrite");
    assert_eq!(actions(rw), ["s3:GetObject", "s3:PutObject"]);
    let (tag, args) = intrinsic(at(rw, "Resource")).expect("!If");
    assert_eq!(tag, "If");
    assert_eq!(args[0].as_str(), Some("ArchiveLocked"));
    assert_eq!(sub_text(&args[1]), "${ArchiveBucket.Arn}/archive/*");
    assert_eq!(sub_text(&args[2]), "${Bucket.Arn}/archive/*");

    let config = statement(&t, "ArchiveFunction", "ConfigRead");
    assert_eq!(actions(config), ["s3:GetObject"]);
    assert_eq!(
        sub_text(at(config, "Resource")),
        "${Bucket.Arn}/${ConfigKey}"
    );

    let dlq = statement(&t, "ArchiveFunction", "DeadLettersRead");
    assert!(is_get_att(at(dlq, "Resource"), "DeadLetterQueue.Arn"));
}

/// The admin function (the Archives page) lists and reads snapshots under
/// archive/ of the archive bucket, and writes nothing there.
#[test]
fn the_admin_function_reads_archives_only() {
    let t = template();
    let list = statement(&t, "AdminFunction", "ArchiveList");
    assert_eq!(actions(list), ["s3:ListBucket"]);
    let (tag, args) = intrinsic(at(list, "Resource")).expect("!If");
    assert_eq!(tag, "If");
    assert_eq!(args[0].as_str(), Some("ArchiveLocked"));
    assert!(is_get_att(&args[1], "ArchiveBucket.Arn"));
    assert!(is_get_att(&args[2], "Bucket.Arn"));
    let prefix = at(at(at(list, "Condition"), "StringLike"), "s3:prefix");
    assert_eq!(string(prefix), "archive/*");
    let read = statement(&t, "AdminFunction", "ArchiveRead");
    assert_eq!(actions(read), ["s3:GetObject"]);
    let (tag, args) = intrinsic(at(read, "Resource")).expect("!If");
    assert_eq!(tag, "If");
    assert_eq!(args[0].as_str(), Some("ArchiveLocked"));
    assert_eq!(sub_text(&args[1]), "${ArchiveBucket.Arn}/archive/*");
    assert_eq!(sub_text(&args[2]), "${Bucket.Arn}/archive/*");
    // No other statement of the admin function reaches the archive bucket
    // or archive/, and none writes to S3.
    for (id, s) in statements(&t) {
        if id != "AdminFunction" {
            continue;
        }
        for a in actions(&s) {
            assert!(
                a != "s3:PutObject" && !a.contains("Delete"),
                "AdminFunction may {a}"
            );
        }
    }
    let vars = at(at(props(&t, "AdminFunction"), "Environment"), "Variables");
    let (tag, args) = intrinsic(at(vars, "TIMEPOST_ARCHIVE_BUCKET")).expect("!If");
    assert_eq!(tag, "If");
    assert_eq!(args[0].as_str(), Some("ArchiveLocked"));
    assert!(is_ref(&args[1], "ArchiveBucket"));
    assert!(is_ref(&args[2], "Bucket"));
}

/// The lifecycle rules of a bucket, by id.
fn lifecycle_rule<'a>(t: &'a Value, bucket: &str, rule_id: &str) -> &'a Value {
    at(at(props(t, bucket), "LifecycleConfiguration"), "Rules")
        .as_sequence()
        .expect("Rules")
        .iter()
        .find(|r| string(at(r, "Id")) == rule_id)
        .unwrap_or_else(|| panic!("{bucket} has no lifecycle rule {rule_id}"))
}

#[test]
fn archived_snapshots_move_to_glacier_instant_retrieval_in_either_bucket() {
    let t = template();
    for bucket in ["Bucket", "ArchiveBucket"] {
        let rule = lifecycle_rule(&t, bucket, "archive-to-glacier-ir");
        assert_eq!(string(at(rule, "Status")), "Enabled", "{bucket}");
        assert_eq!(string(at(rule, "Prefix")), "archive/", "{bucket}");
        let transitions = at(rule, "Transitions").as_sequence().expect("Transitions");
        assert_eq!(transitions.len(), 1, "{bucket}");
        // Instant Retrieval: read back with a plain GET, no restore request.
        assert_eq!(
            string(at(&transitions[0], "StorageClass")),
            "GLACIER_IR",
            "{bucket}"
        );
        assert!(is_ref(
            at(&transitions[0], "TransitionInDays"),
            "ArchiveColdAfterDays"
        ));
    }
    assert_eq!(
        number(at(parameter(&t, "ArchiveColdAfterDays"), "Default")),
        90
    );
}

#[test]
fn object_lock_is_a_bucket_of_its_own_only_when_a_lock_mode_is_set() {
    let t = template();
    let cond = at(at(&t, "Conditions"), "ArchiveLocked");
    let (tag, args) = intrinsic(cond).expect("!Not");
    assert_eq!(tag, "Not");
    let (tag, eq) = intrinsic(&args[0]).expect("!Equals");
    assert_eq!(tag, "Equals");
    assert!(is_ref(&eq[0], "ArchiveLockMode"));
    assert_eq!(eq[1].as_str(), Some("NONE"));
    let mode = parameter(&t, "ArchiveLockMode");
    assert_eq!(string(at(mode, "Default")), "NONE");
    let allowed: Vec<&str> = at(mode, "AllowedValues")
        .as_sequence()
        .expect("AllowedValues")
        .iter()
        .map(string)
        .collect();
    assert_eq!(allowed, ["NONE", "GOVERNANCE", "COMPLIANCE"]);
    assert_eq!(number(at(parameter(&t, "ArchiveLockYears"), "Default")), 10);

    for id in ["ArchiveBucket", "ArchiveBucketPolicy"] {
        assert_eq!(string(at(resource(&t, id), "Condition")), "ArchiveLocked");
    }
    let b = props(&t, "ArchiveBucket");
    assert_eq!(at(b, "ObjectLockEnabled").as_bool(), Some(true));
    assert_eq!(
        string(at(at(b, "VersioningConfiguration"), "Status")),
        "Enabled"
    );
    let lock = at(b, "ObjectLockConfiguration");
    assert_eq!(string(at(lock, "ObjectLockEnabled")), "Enabled");
    let retention = at(at(lock, "Rule"), "DefaultRetention");
    assert!(is_ref(at(retention, "Mode"), "ArchiveLockMode"));
    assert!(is_ref(at(retention, "Years"), "ArchiveLockYears"));
    assert!(opt(retention, "Days").is_none());
    assert_eq!(
        string(at(resource(&t, "ArchiveBucket"), "DeletionPolicy")),
        "Retain"
    );

    // The stack's bucket (rules file, reports) never gets Object Lock.
    let stack_bucket = props(&t, "Bucket");
    assert!(opt(stack_bucket, "ObjectLockEnabled").is_none());
    assert!(opt(stack_bucket, "ObjectLockConfiguration").is_none());
}

#[test]
fn the_alerts_function_runs_two_schedules_and_publishes_only_to_its_topic() {
    let t = template();
    let p = props(&t, "AlertsFunction");
    let events = at(p, "Events");
    for (event, schedule, input) in [
        ("AlertPass", "AlertSchedule", r#"{"task":"alerts"}"#),
        ("ExportRun", "ExportSchedule", r#"{"task":"export"}"#),
    ] {
        let e = at(events, event);
        assert_eq!(string(at(e, "Type")), "ScheduleV2");
        let sp = at(e, "Properties");
        assert!(is_ref(at(sp, "ScheduleExpression"), schedule), "{event}");
        assert_eq!(string(at(sp, "Input")), input);
        assert_eq!(number(at(at(sp, "RetryPolicy"), "MaximumRetryAttempts")), 0);
    }
    let env = at(
        at(at(p, "Environment"), "Variables"),
        "TIMEPOST_ALERT_TOPIC_ARN",
    );
    assert!(is_ref(env, "AlertTopic"));
    let publish = statement(&t, "AlertsFunction", "AlertPublish");
    assert!(is_ref(at(publish, "Resource"), "AlertTopic"));
    let list = statement(&t, "AlertsFunction", "ExportsList");
    assert!(is_get_att(at(list, "Resource"), "Bucket.Arn"));
    let prefix = at(at(at(list, "Condition"), "StringLike"), "s3:prefix");
    assert_eq!(string(prefix), "exports/*");
    let rw = statement(&t, "AlertsFunction", "ExportsReadWrite");
    assert_eq!(sub_text(at(rw, "Resource")), "${Bucket.Arn}/exports/*");
    // The topic: encrypted (notices name people), e-mail subscription only
    // when the parameter is set.
    let topic = props(&t, "AlertTopic");
    assert_eq!(string(at(topic, "KmsMasterKeyId")), "alias/aws/sns");
    let sub = resource(&t, "AlertEmailSubscription");
    assert_eq!(string(at(sub, "Condition")), "HasAlertEmail");
    let sp = at(sub, "Properties");
    assert!(is_ref(at(sp, "TopicArn"), "AlertTopic"));
    assert!(is_ref(at(sp, "Endpoint"), "AlertEmail"));
    assert_eq!(string(at(parameter(&t, "AlertEmail"), "Default")), "");
}

#[test]
fn the_reconcile_function_runs_on_its_schedule_and_writes_only_its_runs() {
    let t = template();
    let p = props(&t, "ReconcileFunction");
    let events = at(p, "Events").as_mapping().expect("Events");
    assert_eq!(events.len(), 1, "one schedule");
    let e = at(at(p, "Events"), "ReconcileRun");
    assert_eq!(string(at(e, "Type")), "ScheduleV2");
    let sp = at(e, "Properties");
    assert!(is_ref(at(sp, "ScheduleExpression"), "ReconcileSchedule"));
    assert_eq!(string(at(sp, "Input")), "{}");
    assert_eq!(
        number(at(at(sp, "RetryPolicy"), "MaximumRetryAttempts")),
        0,
        "the next scheduled run is the retry"
    );
    assert_eq!(
        string(at(parameter(&t, "ReconcileSchedule"), "Default")),
        "rate(1 day)"
    );
    assert!(is_ref(
        at(at(p, "LoggingConfig"), "LogGroup"),
        "ReconcileLogGroup"
    ));
    // Many items are written in one place only: the run's own break
    // partitions (a BatchWriteItem could otherwise delete any item).
    let batch = statement(&t, "ReconcileFunction", "RunBreaksWrite");
    assert_eq!(actions(batch), vec!["dynamodb:BatchWriteItem".to_string()]);
    assert!(is_get_att(at(batch, "Resource"), "Table.Arn"));
    let keys = at(
        at(at(batch, "Condition"), "ForAllValues:StringLike"),
        "dynamodb:LeadingKeys",
    );
    assert_eq!(
        keys.as_sequence()
            .expect("list")
            .iter()
            .map(string)
            .collect::<Vec<_>>(),
        vec!["recon#breaks#*"]
    );
    let items = statement(&t, "ReconcileFunction", "TableItems");
    assert!(!actions(items)
        .iter()
        .any(|a| a == "dynamodb:DeleteItem" || a == "dynamodb:BatchWriteItem"));
    let config = statement(&t, "ReconcileFunction", "ConfigRead");
    let resource = intrinsic(at(config, "Resource")).expect("!Sub");
    assert_eq!(string(resource.1), "${Bucket.Arn}/${ConfigKey}");
}
