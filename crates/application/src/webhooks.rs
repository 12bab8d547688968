//! Webhook endpoints: the ports that store them and check where they point, and the
//! use case that manages them for a business (scope `webhooks:manage`). Delivery is in
//! `delivery`.

use std::sync::Arc;

use async_trait::async_trait;
use pingback_domain::{
    BusinessId, EventTypes, FieldError, MAX_ENDPOINTS_PER_BUSINESS, SecretSeed, WebhookChange,
    WebhookEndpoint, WebhookId, WebhookSecret, WebhookUrl,
};

use crate::commands::Clock;
use crate::principal::{InsufficientScope, Principal, Scope};
use crate::repository::RepositoryError;

/// An endpoint as stored: the endpoint and the seed its secret is derived from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredWebhook {
    pub endpoint: WebhookEndpoint,
    pub seed: SecretSeed,
}

/// Stores a business's webhook endpoints. Implemented by every storage adapter.
///
/// # Contract
/// - Every call is scoped by `business`: an endpoint of another business is never
///   returned, changed or deleted (`Ok(None)` / `Ok(false)`, as if absent).
/// - `create` stores `endpoint` with `seed` unless `business` has `limit` endpoints
///   already (`Ok(None)`); the count and the insert are atomic (two concurrent
///   creations cannot exceed the limit). It sets the delivery position to the
///   business's last event id at that moment and returns the endpoint as stored.
/// - `update` applies the change with [`WebhookEndpoint::apply`] under a lock of the
///   row and stores the endpoint's settings (url, event types, enabled) and, when it
///   was enabled again, its fresh delivery run; it never moves `delivered_through`
///   (the deliverer owns it).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait WebhookRepository: Send + Sync + 'static {
    async fn create(
        &self,
        endpoint: WebhookEndpoint,
        seed: SecretSeed,
        limit: usize,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError>;

    /// The business's endpoints, oldest first.
    async fn list(&self, business: BusinessId) -> Result<Vec<WebhookEndpoint>, RepositoryError>;

    async fn find(
        &self,
        business: BusinessId,
        id: WebhookId,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError>;

    async fn update(
        &self,
        business: BusinessId,
        id: WebhookId,
        change: WebhookChange,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError>;

    /// `false` when there was no such endpoint in `business`.
    async fn delete(&self, business: BusinessId, id: WebhookId) -> Result<bool, RepositoryError>;
}

/// Why a destination is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DestinationRefused(pub String);

/// Checks where a URL leads before it is accepted (the outbound adapter, which also
/// checks again on every delivery, on the address it connects to).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait DestinationGuard: Send + Sync + 'static {
    /// `Err` when the URL's scheme is not allowed or its host does not resolve, or
    /// resolves to any address that is not allowed (loopback, private, link-local…).
    async fn check(&self, url: &WebhookUrl) -> Result<(), DestinationRefused>;
}

/// The server's key webhook secrets are derived from (see [`WebhookSecret::derive`]).
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self(key)
    }

    pub fn secret(&self, stored: &StoredWebhook) -> WebhookSecret {
        WebhookSecret::derive(
            &self.0,
            stored.endpoint.business_id,
            stored.endpoint.id,
            &stored.seed,
        )
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

/// A registration as asked for (values not validated yet).
#[derive(Clone, Debug, Default)]
pub struct WebhookRequest {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// Why a webhook use case did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Forbidden(#[from] InsufficientScope),
    #[error("webhook endpoint not found")]
    NotFound,
    /// Values that break a rule, by JSON Pointer.
    #[error("invalid webhook endpoint")]
    Invalid(Vec<FieldError>),
    #[error("storage is unavailable")]
    Unavailable(#[source] RepositoryError),
    #[error("internal error")]
    Internal(#[source] RepositoryError),
}

impl From<RepositoryError> for WebhookError {
    fn from(error: RepositoryError) -> Self {
        match error {
            e @ RepositoryError::Unavailable(_) => Self::Unavailable(e),
            e @ RepositoryError::Internal(_) => Self::Internal(e),
        }
    }
}

/// A new endpoint with its secret, shown this once.
#[derive(Debug)]
pub struct Registered {
    pub endpoint: WebhookEndpoint,
    pub secret: WebhookSecret,
}

/// Registers, lists, changes and deletes a business's endpoints.
#[derive(Clone)]
pub struct WebhookService {
    repository: Arc<dyn WebhookRepository>,
    guard: Arc<dyn DestinationGuard>,
    key: SecretKey,
    clock: Arc<dyn Clock>,
    allow_http: bool,
}

impl WebhookService {
    pub fn new(
        repository: Arc<dyn WebhookRepository>,
        guard: Arc<dyn DestinationGuard>,
        key: SecretKey,
        clock: Arc<dyn Clock>,
        allow_http: bool,
    ) -> Self {
        Self {
            repository,
            guard,
            key,
            clock,
            allow_http,
        }
    }

    pub async fn register(
        &self,
        principal: &Principal,
        request: WebhookRequest,
    ) -> Result<Registered, WebhookError> {
        principal.require(Scope::WebhooksManage)?;
        let mut errors = Vec::new();
        let url = match &request.url {
            Some(url) => self.url(url, &mut errors).await,
            None => {
                errors.push(FieldError::new("/url", "is required"));
                None
            }
        };
        let types = match &request.event_types {
            Some(names) => event_types(names, &mut errors),
            None => Some(EventTypes::ALL),
        };
        let (Some(url), Some(types)) = (url, types) else {
            return Err(WebhookError::Invalid(errors));
        };
        let business = principal.business_id();
        let endpoint = WebhookEndpoint::register(
            WebhookId::from_uuid(uuid::Uuid::now_v7()),
            business,
            url,
            types,
            self.clock.now(),
            0,
        );
        let seed = random_seed().map_err(RepositoryError::internal)?;
        let stored = StoredWebhook {
            endpoint: endpoint.clone(),
            seed: seed.clone(),
        };
        let Some(created) = self
            .repository
            .create(endpoint, seed, MAX_ENDPOINTS_PER_BUSINESS)
            .await?
        else {
            return Err(WebhookError::Invalid(vec![FieldError::new(
                "",
                format!(
                    "a business may have at most {MAX_ENDPOINTS_PER_BUSINESS} webhook endpoints"
                ),
            )]));
        };
        ensure_owned(&created, business)?;
        Ok(Registered {
            secret: self.key.secret(&stored),
            endpoint: created,
        })
    }

    pub async fn list(&self, principal: &Principal) -> Result<Vec<WebhookEndpoint>, WebhookError> {
        principal.require(Scope::WebhooksManage)?;
        let business = principal.business_id();
        let endpoints = self.repository.list(business).await?;
        for endpoint in &endpoints {
            ensure_owned(endpoint, business)?;
        }
        Ok(endpoints)
    }

    pub async fn find(
        &self,
        principal: &Principal,
        id: WebhookId,
    ) -> Result<WebhookEndpoint, WebhookError> {
        principal.require(Scope::WebhooksManage)?;
        let business = principal.business_id();
        let endpoint = self
            .repository
            .find(business, id)
            .await?
            .ok_or(WebhookError::NotFound)?;
        ensure_owned(&endpoint, business)?;
        Ok(endpoint)
    }

    pub async fn change(
        &self,
        principal: &Principal,
        id: WebhookId,
        request: WebhookRequest,
    ) -> Result<WebhookEndpoint, WebhookError> {
        principal.require(Scope::WebhooksManage)?;
        let mut errors = Vec::new();
        let mut change = WebhookChange {
            enabled: request.enabled,
            ..WebhookChange::default()
        };
        if let Some(url) = &request.url {
            change.url = self.url(url, &mut errors).await;
        }
        if let Some(names) = &request.event_types {
            change.event_types = event_types(names, &mut errors);
        }
        if !errors.is_empty() {
            return Err(WebhookError::Invalid(errors));
        }
        let business = principal.business_id();
        let endpoint = self
            .repository
            .update(business, id, change)
            .await?
            .ok_or(WebhookError::NotFound)?;
        ensure_owned(&endpoint, business)?;
        Ok(endpoint)
    }

    pub async fn delete(&self, principal: &Principal, id: WebhookId) -> Result<(), WebhookError> {
        principal.require(Scope::WebhooksManage)?;
        if self.repository.delete(principal.business_id(), id).await? {
            Ok(())
        } else {
            Err(WebhookError::NotFound)
        }
    }

    /// The URL if its syntax and its destination are acceptable.
    async fn url(&self, input: &str, errors: &mut Vec<FieldError>) -> Option<WebhookUrl> {
        let url = match WebhookUrl::parse(input, self.allow_http) {
            Ok(url) => url,
            Err(error) => {
                errors.push(FieldError::new("/url", error));
                return None;
            }
        };
        match self.guard.check(&url).await {
            Ok(()) => Some(url),
            Err(refused) => {
                errors.push(FieldError::new("/url", refused));
                None
            }
        }
    }
}

fn event_types(names: &[String], errors: &mut Vec<FieldError>) -> Option<EventTypes> {
    EventTypes::parse(names.iter().map(String::as_str))
        .map_err(|error| errors.push(FieldError::new("/event_types", error)))
        .ok()
}

/// The tenant rule, again: an adapter that returned another business's endpoint is a
/// bug, answered as an internal error rather than shown.
fn ensure_owned(endpoint: &WebhookEndpoint, business: BusinessId) -> Result<(), WebhookError> {
    if endpoint.business_id == business {
        Ok(())
    } else {
        tracing::error!(%business, "storage returned another business's webhook endpoint");
        Err(WebhookError::Internal(RepositoryError::internal(
            "storage returned another business's webhook endpoint",
        )))
    }
}

fn random_seed() -> Result<SecretSeed, getrandom::Error> {
    let mut seed = [0; 32];
    getrandom::fill(&mut seed)?;
    Ok(SecretSeed(seed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::{Scopes, Subject};
    use pingback_domain::{Timestamp, WebhookEndpoint};

    struct Fixed;
    impl Clock for Fixed {
        fn now(&self) -> Timestamp {
            Timestamp::from_unix_micros(1_700_000_000_000_000).unwrap_or_else(|_| Timestamp::now())
        }
    }

    struct Open;
    #[async_trait]
    impl DestinationGuard for Open {
        async fn check(&self, _url: &WebhookUrl) -> Result<(), DestinationRefused> {
            Ok(())
        }
    }

    fn principal(business: u128, scopes: &[Scope]) -> Principal {
        Principal::with_scopes(
            BusinessId::from_uuid(uuid::Uuid::from_u128(business)),
            Subject::new("agent").unwrap(),
            scopes.iter().copied().collect::<Scopes>(),
        )
    }

    fn service(repository: MockWebhookRepository) -> WebhookService {
        WebhookService::new(
            Arc::new(repository),
            Arc::new(Open),
            SecretKey::new([9; 32]),
            Arc::new(Fixed),
            false,
        )
    }

    #[tokio::test]
    async fn managing_needs_the_scope_before_any_storage_call() {
        let service = service(MockWebhookRepository::new());
        let reader = principal(1, &[Scope::ConversationsRead]);
        assert!(matches!(
            service.list(&reader).await,
            Err(WebhookError::Forbidden(_))
        ));
    }

    #[tokio::test]
    async fn registration_reports_every_invalid_value() {
        let service = service(MockWebhookRepository::new());
        let manager = principal(1, &[Scope::WebhooksManage]);
        let request = WebhookRequest {
            url: Some("http://example.com/".into()),
            event_types: Some(vec!["nope".into()]),
            enabled: None,
        };
        let Err(WebhookError::Invalid(errors)) = service.register(&manager, request).await else {
            panic!("expected invalid");
        };
        let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/url", "/event_types"]);
    }

    #[tokio::test]
    async fn another_business_endpoint_from_storage_is_never_shown() {
        let mut repository = MockWebhookRepository::new();
        repository.expect_find().returning(|_, id| {
            Ok(Some(WebhookEndpoint::register(
                id,
                BusinessId::from_uuid(uuid::Uuid::from_u128(2)),
                WebhookUrl::parse("https://example.com/", false).unwrap(),
                EventTypes::ALL,
                Fixed.now(),
                0,
            )))
        });
        let service = service(repository);
        let manager = principal(1, &[Scope::WebhooksManage]);
        let id = WebhookId::from_uuid(uuid::Uuid::from_u128(3));
        assert!(matches!(
            service.find(&manager, id).await,
            Err(WebhookError::Internal(_))
        ));
    }

    #[tokio::test]
    async fn the_limit_is_a_validation_error() {
        let mut repository = MockWebhookRepository::new();
        repository.expect_create().returning(|_, _, _| Ok(None));
        let service = service(repository);
        let manager = principal(1, &[Scope::WebhooksManage]);
        let request = WebhookRequest {
            url: Some("https://example.com/".into()),
            ..WebhookRequest::default()
        };
        assert!(matches!(
            service.register(&manager, request).await,
            Err(WebhookError::Invalid(_))
        ));
    }
}
