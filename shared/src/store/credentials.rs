//! Provider credentials per account (`pk=TENANT#{tenant}`, `sk=CREDENTIALS#{account}`).
//!
//! NOTE: tokens are stored in DynamoDB, encrypted at rest by the table's SSE, not with a
//! separate KMS key or Secrets Manager; a stricter deployment should move them there.

use super::{get_n, get_s, keys, n, s, Store, StoreError};
use crate::ids::{AccountId, TenantId};
use crate::secret::Secret;

/// An account's provider tokens. `Debug` never shows them.
#[derive(Clone, Default)]
pub struct Credentials {
    pub access_token: Option<Secret>,
    pub refresh_token: Option<Secret>,
    /// When the access token expires, epoch seconds; unknown when absent.
    pub access_token_expires_at: Option<i64>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_token", &self.access_token.as_ref().map(|_| "[redacted]"))
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .field("access_token_expires_at", &self.access_token_expires_at)
            .finish()
    }
}

fn credentials_sk(account_id: &AccountId) -> String {
    format!("CREDENTIALS#{account_id}")
}

impl Store {
    /// Reads an account's credentials; an account without any gets empty credentials.
    pub async fn get_credentials(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
    ) -> Result<Credentials, StoreError> {
        let table = &self.tables.accounts;
        let output = self
            .dynamodb
            .get_item()
            .table_name(table)
            .key("pk", s(keys::account_pk(tenant_id)))
            .key("sk", s(credentials_sk(account_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| StoreError::dynamo("GetItem", table, &error))?;
        let Some(item) = output.item else { return Ok(Credentials::default()) };
        Ok(Credentials {
            access_token: get_s(&item, "access_token").map(Secret::new),
            refresh_token: get_s(&item, "refresh_token").map(Secret::new),
            access_token_expires_at: get_n(&item, "access_token_expires_at"),
        })
    }

    /// Stores the tokens that are `Some`, keeping the others.
    pub async fn put_credentials(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
        credentials: &Credentials,
    ) -> Result<(), StoreError> {
        let table = &self.tables.accounts;
        let mut sets = Vec::new();
        let mut update = self
            .dynamodb
            .update_item()
            .table_name(table)
            .key("pk", s(keys::account_pk(tenant_id)))
            .key("sk", s(credentials_sk(account_id)));
        if let Some(token) = &credentials.access_token {
            sets.push("access_token = :access");
            update = update.expression_attribute_values(":access", s(token.expose()));
        }
        if let Some(token) = &credentials.refresh_token {
            sets.push("refresh_token = :refresh");
            update = update.expression_attribute_values(":refresh", s(token.expose()));
        }
        if let Some(expires_at) = credentials.access_token_expires_at {
            sets.push("access_token_expires_at = :expires");
            update = update.expression_attribute_values(":expires", n(expires_at));
        }
        if sets.is_empty() {
            return Ok(());
        }
        update
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
            .map_err(|error| StoreError::dynamo("UpdateItem", table, &error))?;
        Ok(())
    }
}
