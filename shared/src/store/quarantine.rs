//! Quarantine (`pk=QUARANTINE#{provider}`): verified bodies commsync could not route or
//! parse, kept byte for byte so they can be replayed once the cause is fixed.
//!
//! A body is keyed by its SHA-256, so a redelivery of the same body adds to `deliveries`
//! instead of storing a second copy. Bodies above one item's room are split into parts.

use super::{get_n, get_s, keys, n, s, Store, StoreError};
use crate::event::rfc3339;
use crate::ids::Provider;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use sha2::{Digest, Sha256};

/// DynamoDB items are capped at 400 KB; each part keeps its body below that.
const MAX_PART_BYTES: usize = 350_000;

/// A quarantined body as `quarantine list` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineRecord {
    pub provider: Provider,
    /// Hex SHA-256 of the body.
    pub digest: String,
    pub reason: String,
    pub first_received_at: String,
    pub last_received_at: String,
    pub deliveries: u64,
    pub body_bytes: u64,
}

impl Store {
    /// Keeps `body` with the reason it could not be ingested. Returns the body's digest.
    #[tracing::instrument(skip(self, body, reason), fields(provider = %provider, bytes = body.len()))]
    pub async fn quarantine(&self, provider: Provider, body: &[u8], reason: &str) -> Result<String, StoreError> {
        let table = &self.tables.events;
        let digest = hex::encode(Sha256::digest(body));
        let head_sk = format!("BODY#{digest}");
        let parts: Vec<&[u8]> = if body.is_empty() { vec![body] } else { body.chunks(MAX_PART_BYTES).collect() };

        // Extra parts first, so a head item never points at parts that are not there.
        for (index, part) in parts.iter().enumerate().skip(1) {
            self.dynamodb
                .put_item()
                .table_name(table)
                .item("pk", s(keys::quarantine_pk(provider)))
                .item("sk", s(format!("{head_sk}#PART#{index}")))
                .item("body", AttributeValue::B(Blob::new(part.to_vec())))
                .send()
                .await
                .map_err(|error| StoreError::dynamo("PutItem", table, &error))?;
        }

        let now = rfc3339(Utc::now());
        let reason: String = reason.chars().take(2000).collect();
        self.dynamodb
            .update_item()
            .table_name(table)
            .key("pk", s(keys::quarantine_pk(provider)))
            .key("sk", s(head_sk))
            .update_expression(
                "SET provider = :provider, reason = :reason, body = :body, body_bytes = :bytes, parts = :parts, \
                 first_received_at = if_not_exists(first_received_at, :now), last_received_at = :now \
                 ADD deliveries :one",
            )
            .expression_attribute_values(":provider", s(provider.as_str()))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":body", AttributeValue::B(Blob::new(parts[0].to_vec())))
            .expression_attribute_values(":bytes", n(body.len()))
            .expression_attribute_values(":parts", n(parts.len()))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(|error| StoreError::dynamo("UpdateItem", table, &error))?;
        Ok(digest)
    }

    /// Lists the quarantined bodies of one provider.
    pub async fn list_quarantine(&self, provider: Provider) -> Result<Vec<QuarantineRecord>, StoreError> {
        let items = self.query_partition(&keys::quarantine_pk(provider), "BODY#").await?;
        Ok(items
            .iter()
            .filter(|item| !get_s(item, "sk").unwrap_or_default().contains("#PART#"))
            .map(|item| QuarantineRecord {
                provider,
                digest: get_s(item, "sk").unwrap_or_default().trim_start_matches("BODY#").to_string(),
                reason: get_s(item, "reason").unwrap_or_default().to_string(),
                first_received_at: get_s(item, "first_received_at").unwrap_or_default().to_string(),
                last_received_at: get_s(item, "last_received_at").unwrap_or_default().to_string(),
                deliveries: get_n(item, "deliveries").unwrap_or(0),
                body_bytes: get_n(item, "body_bytes").unwrap_or(0),
            })
            .collect())
    }

    /// Deletes a quarantined body and its parts, after it was replayed.
    pub async fn delete_quarantined(&self, provider: Provider, digest: &str) -> Result<(), StoreError> {
        let table = &self.tables.events;
        let items = self.query_partition(&keys::quarantine_pk(provider), &format!("BODY#{digest}")).await?;
        for item in items {
            let sk = get_s(&item, "sk").unwrap_or_default().to_string();
            self.dynamodb
                .delete_item()
                .table_name(table)
                .key("pk", s(keys::quarantine_pk(provider)))
                .key("sk", s(sk))
                .send()
                .await
                .map_err(|error| StoreError::dynamo("DeleteItem", table, &error))?;
        }
        Ok(())
    }

    /// Reassembles a quarantined body from its parts.
    pub async fn quarantined_body(&self, provider: Provider, digest: &str) -> Result<Vec<u8>, StoreError> {
        let table = &self.tables.events;
        let items = self.query_partition(&keys::quarantine_pk(provider), &format!("BODY#{digest}")).await?;
        let head_sk = format!("BODY#{digest}");
        let head = items.iter().find(|item| get_s(item, "sk") == Some(head_sk.as_str())).ok_or_else(|| {
            StoreError::Malformed {
                table: table.clone(),
                key: head_sk.clone(),
                problem: "no quarantined body with this digest; list them with `commsync quarantine list`".to_string(),
            }
        })?;
        let part_count: usize = get_n(head, "parts").unwrap_or(1);

        let mut body = Vec::new();
        for index in 0..part_count {
            let sk = if index == 0 { head_sk.clone() } else { format!("{head_sk}#PART#{index}") };
            let part = items
                .iter()
                .find(|item| get_s(item, "sk") == Some(sk.as_str()))
                .and_then(|item| item.get("body"))
                .and_then(|value| value.as_b().ok())
                .ok_or_else(|| StoreError::Malformed {
                    table: table.clone(),
                    key: sk.clone(),
                    problem: "quarantine part missing".to_string(),
                })?;
            body.extend_from_slice(part.as_ref());
        }
        Ok(body)
    }
}
