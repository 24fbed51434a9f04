//! Reads `template.yaml`: the tables, queues and buses to create locally, each function's
//! binary, HTTP routes and environment, so the local stack never drifts from the template.

use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("template.yaml is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("template.yaml: {0}")]
    Invalid(String),
}

/// A value in the template that the local stack resolves: a literal or an intrinsic.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(String),
    /// `!Ref Name`: a parameter's value, a table's name or a queue's URL.
    Ref(String),
    /// `!GetAtt Name.Attribute`.
    GetAtt(String, String),
    /// `!Sub "text ${Name}"`.
    Sub(String),
}

/// A resource the local stack creates.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    pub logical_id: String,
    pub resource_type: String,
    pub properties: Value,
}

/// A function: its binary, HTTP routes and environment.
#[derive(Debug, Clone)]
pub struct FunctionDef {
    pub logical_id: String,
    pub binary: String,
    pub routes: Vec<(String, String)>,
    pub sqs_sources: Vec<String>,
    pub environment: BTreeMap<String, Expr>,
}

/// The parts of `template.yaml` the local stack uses.
#[derive(Debug, Clone)]
pub struct Template {
    pub parameters: BTreeMap<String, Option<String>>,
    pub resources: Vec<ResourceDef>,
    pub functions: Vec<FunctionDef>,
}

impl Template {
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TemplateError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let root: Value = serde_yaml::from_str(text)?;

        let mut parameters = BTreeMap::new();
        if let Some(params) = root.get("Parameters").and_then(Value::as_mapping) {
            for (name, definition) in params {
                let name =
                    name.as_str().ok_or_else(|| TemplateError::Invalid("parameter name is not a string".into()))?;
                parameters.insert(name.to_string(), definition.get("Default").map(scalar_text));
            }
        }

        let global_environment = root
            .get("Globals")
            .and_then(|globals| globals.get("Function"))
            .and_then(|function| function.get("Environment"))
            .and_then(|environment| environment.get("Variables"))
            .map(parse_variables)
            .transpose()?
            .unwrap_or_default();

        let resources_map = root
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| TemplateError::Invalid("no Resources section".into()))?;

        let mut resources = Vec::new();
        let mut functions = Vec::new();
        for (logical_id, resource) in resources_map {
            let logical_id = logical_id.as_str().unwrap_or_default().to_string();
            let resource_type = resource.get("Type").and_then(Value::as_str).unwrap_or_default().to_string();
            let properties = resource.get("Properties").cloned().unwrap_or(Value::Null);

            if resource_type == "AWS::Serverless::Function" {
                functions.push(parse_function(&logical_id, resource, &properties, &global_environment)?);
            } else {
                resources.push(ResourceDef { logical_id, resource_type, properties });
            }
        }
        Ok(Self { parameters, resources, functions })
    }

    pub fn function_by_binary(&self, binary: &str) -> Option<&FunctionDef> {
        self.functions.iter().find(|function| function.binary == binary || function.logical_id == binary)
    }
}

fn parse_function(
    logical_id: &str,
    resource: &Value,
    properties: &Value,
    global_environment: &BTreeMap<String, Expr>,
) -> Result<FunctionDef, TemplateError> {
    let binary = resource
        .get("Metadata")
        .and_then(|metadata| metadata.get("BuildProperties"))
        .and_then(|build| build.get("Binary"))
        .and_then(Value::as_str)
        .ok_or_else(|| TemplateError::Invalid(format!("{logical_id} has no Metadata.BuildProperties.Binary")))?
        .to_string();

    let mut environment = global_environment.clone();
    if let Some(variables) = properties.get("Environment").and_then(|environment| environment.get("Variables")) {
        environment.extend(parse_variables(variables)?);
    }

    let mut routes = Vec::new();
    let mut sqs_sources = Vec::new();
    if let Some(events) = properties.get("Events").and_then(Value::as_mapping) {
        for event in events.values() {
            let event_properties = event.get("Properties");
            match event.get("Type").and_then(Value::as_str) {
                Some("HttpApi") => {
                    let method =
                        event_properties.and_then(|p| p.get("Method")).and_then(Value::as_str).unwrap_or("ANY");
                    let path = event_properties.and_then(|p| p.get("Path")).and_then(Value::as_str).unwrap_or("/");
                    routes.push((method.to_ascii_uppercase(), path.to_string()));
                }
                Some("SQS") => {
                    if let Some(Expr::GetAtt(queue, _)) = event_properties.and_then(|p| p.get("Queue")).map(parse_expr)
                    {
                        sqs_sources.push(queue);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(FunctionDef { logical_id: logical_id.to_string(), binary, routes, sqs_sources, environment })
}

fn parse_variables(variables: &Value) -> Result<BTreeMap<String, Expr>, TemplateError> {
    let mapping = variables
        .as_mapping()
        .ok_or_else(|| TemplateError::Invalid("Environment.Variables is not a mapping".into()))?;
    Ok(mapping.iter().filter_map(|(name, value)| Some((name.as_str()?.to_string(), parse_expr(value)))).collect())
}

/// Reads a scalar or one of the intrinsics `!Ref`, `!GetAtt`, `!Sub` (short or long form).
pub fn parse_expr(value: &Value) -> Expr {
    match value {
        Value::Tagged(tagged) => {
            let inner = scalar_text(&tagged.value);
            match tagged.tag.to_string().as_str() {
                "!Ref" => Expr::Ref(inner),
                "!GetAtt" => split_get_att(&inner),
                "!Sub" => Expr::Sub(inner),
                _ => Expr::Literal(inner),
            }
        }
        Value::Mapping(mapping) if mapping.len() == 1 => {
            let (key, inner) = mapping.iter().next().expect("one entry");
            match key.as_str() {
                Some("Ref") => Expr::Ref(scalar_text(inner)),
                Some("Fn::GetAtt") => match inner {
                    Value::Sequence(parts) if parts.len() == 2 => {
                        Expr::GetAtt(scalar_text(&parts[0]), scalar_text(&parts[1]))
                    }
                    other => split_get_att(&scalar_text(other)),
                },
                Some("Fn::Sub") => Expr::Sub(scalar_text(inner)),
                _ => Expr::Literal(String::new()),
            }
        }
        other => Expr::Literal(scalar_text(other)),
    }
}

fn split_get_att(text: &str) -> Expr {
    match text.split_once('.') {
        Some((resource, attribute)) => Expr::GetAtt(resource.to_string(), attribute.to_string()),
        None => Expr::GetAtt(text.to_string(), String::new()),
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_repository_file_parses() {
        let template = Template::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")).unwrap();
        let whatsapp = template.function_by_binary("webhook-whatsapp").unwrap();
        assert!(whatsapp.routes.contains(&("POST".to_string(), "/webhooks/whatsapp".to_string())));
        assert_eq!(whatsapp.environment.get("EVENTS_TABLE"), Some(&Expr::Ref("EventsTable".to_string())));
    }

    fn template_yaml() -> Value {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")).unwrap();
        serde_yaml::from_str(&text).unwrap()
    }

    fn functions(root: &Value) -> Vec<(String, &Value)> {
        root["Resources"]
            .as_mapping()
            .unwrap()
            .iter()
            .filter(|(_, resource)| resource["Type"].as_str() == Some("AWS::Serverless::Function"))
            .map(|(name, resource)| (name.as_str().unwrap().to_string(), resource))
            .collect()
    }

    fn sqs_sources(function: &Value) -> Vec<&Value> {
        function["Properties"]["Events"]
            .as_mapping()
            .map(|events| events.values().filter(|event| event["Type"].as_str() == Some("SQS")).collect())
            .unwrap_or_default()
    }

    fn queue_of(source: &Value) -> String {
        match parse_expr(&source["Properties"]["Queue"]) {
            Expr::GetAtt(queue, _) => queue,
            other => panic!("SQS event queue is not a !GetAtt: {other:?}"),
        }
    }

    #[test]
    fn template_sqs_events_report_batch_item_failures() {
        let root = template_yaml();
        for (name, function) in functions(&root) {
            for source in sqs_sources(function) {
                let types = source["Properties"]["FunctionResponseTypes"].as_sequence().cloned().unwrap_or_default();
                assert!(types.iter().any(|t| t.as_str() == Some("ReportBatchItemFailures")), "{name}");
            }
        }
    }

    #[test]
    fn template_visibility_timeout_covers_six_consumer_timeouts() {
        let root = template_yaml();
        let global_timeout = root["Globals"]["Function"]["Timeout"].as_u64().unwrap_or(3);
        for (name, function) in functions(&root) {
            let timeout = function["Properties"]["Timeout"].as_u64().unwrap_or(global_timeout);
            for source in sqs_sources(function) {
                let queue = queue_of(source);
                let visibility =
                    root["Resources"][queue.as_str()]["Properties"]["VisibilityTimeout"].as_u64().unwrap_or(30);
                assert!(visibility >= 6 * timeout, "{queue}: {visibility} s < 6 x {name}'s {timeout} s");
            }
        }
    }

    #[test]
    fn template_consumed_queues_have_dlq() {
        let root = template_yaml();
        let mut consumed: Vec<String> =
            functions(&root).iter().flat_map(|(_, function)| sqs_sources(function)).map(queue_of).collect();
        // EventsQueue is consumed by the application, outside this template.
        consumed.push("EventsQueue".to_string());
        for queue in consumed {
            let redrive = &root["Resources"][queue.as_str()]["Properties"]["RedrivePolicy"];
            let target = parse_expr(&redrive["deadLetterTargetArn"]);
            assert!(
                matches!(&target, Expr::GetAtt(dlq, attribute) if attribute == "Arn" && root["Resources"][dlq.as_str()].is_mapping()),
                "{queue} has no DLQ: {target:?}"
            );
            assert_eq!(redrive["maxReceiveCount"].as_u64(), Some(5), "{queue}");
        }
    }

    #[test]
    fn template_ttl_attribute_matches_code() {
        let root = template_yaml();
        let ttl = &root["Resources"]["EventsTable"]["Properties"]["TimeToLiveSpecification"];
        assert_eq!(ttl["AttributeName"].as_str(), Some(crate::store::TTL_ATTRIBUTE));
        assert_eq!(ttl["Enabled"].as_bool(), Some(true));
    }

    #[test]
    fn template_function_binaries_exist() {
        let root = template_yaml();
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (name, function) in functions(&root) {
            let binary = function["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
            let manifest = std::fs::read_to_string(workspace.join("functions").join(binary).join("Cargo.toml"))
                .unwrap_or_else(|_| panic!("{name}: functions/{binary}/Cargo.toml is missing"));
            assert!(manifest.contains(&format!("name = \"{binary}\"")), "{name}: package is not named {binary}");
            assert!(workspace.join("functions").join(binary).join("src/main.rs").is_file(), "{name}");
        }
    }

    #[test]
    fn expr_long_form_get_att_parses() {
        let value: Value = serde_yaml::from_str("{\"Fn::GetAtt\": [Queue, Arn]}").unwrap();
        assert_eq!(parse_expr(&value), Expr::GetAtt("Queue".into(), "Arn".into()));
    }
}
