//! `GET /api/v1/conversations`: the inbox. Query parameters in, one page out, with an
//! opaque cursor bound to the filters, the order and the business it was issued for.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use pingback_application::Scope;
use pingback_domain::{
    AgentId, AssigneeFilter, BusinessId, ChannelType, ConversationId, CustomerId, InboxFilter,
    InboxOrder, InboxPosition, InboxQuery, Status, Timestamp,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::problem::ApiError;
use crate::representation::ConversationItemBody;
use crate::routes::{ApiState, read_error, tenant_caching};
use crate::writes::authorize;

const PARAMETERS: &[&str] = &[
    "status",
    "assignee_id",
    "customer_id",
    "channel_type",
    "updated_after",
    "updated_before",
    "order",
    "limit",
    "cursor",
];

fn invalid(name: &str, detail: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("Invalid query parameter `{name}`: {detail}."))
}

/// The request's parameters: the query, and the pairs the next page's link repeats.
struct Parsed {
    query: InboxQuery,
    cursor: Option<String>,
    /// Every parameter but `cursor`, as given.
    kept: Vec<(String, String)>,
}

fn parse(query_string: &str) -> Result<Parsed, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query_string)
        .map_err(|_| ApiError::BadRequest("The query string is not valid.".to_owned()))?;
    let mut filter = InboxFilter::default();
    let mut order = InboxOrder::default();
    let mut limit = InboxQuery::DEFAULT_LIMIT;
    let mut cursor = None;
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &pairs {
        let Some(known) = PARAMETERS.iter().copied().find(|p| p == name) else {
            return Err(ApiError::BadRequest(format!(
                "Unknown query parameter `{name}` (expected: {}).",
                PARAMETERS.join(", ")
            )));
        };
        // `status` may repeat (its values add up); the others are single.
        if known != "status" && seen.contains(&known) {
            return Err(invalid(known, "given more than once"));
        }
        seen.push(known);
        match known {
            "status" => {
                for name in value.split(',') {
                    let status = name
                        .trim()
                        .parse::<Status>()
                        .map_err(|e| invalid(known, e))?;
                    if !filter.statuses.contains(&status) {
                        filter.statuses.push(status);
                    }
                }
            }
            "assignee_id" => {
                filter.assignee =
                    Some(if value == "none" {
                        AssigneeFilter::Unassigned
                    } else {
                        AssigneeFilter::Agent(AgentId::parse(value).map_err(|e| {
                            invalid(known, format!("{e}, or `none` for unassigned"))
                        })?)
                    });
            }
            "customer_id" => {
                filter.customer_id = Some(CustomerId::parse(value).map_err(|e| invalid(known, e))?);
            }
            "channel_type" => {
                filter.channel_type =
                    Some(ChannelType::new(value.as_str()).map_err(|e| invalid(known, e))?);
            }
            "updated_after" => {
                filter.updated_after =
                    Some(Timestamp::parse_rfc3339(value).map_err(|e| invalid(known, e))?);
            }
            "updated_before" => {
                filter.updated_before =
                    Some(Timestamp::parse_rfc3339(value).map_err(|e| invalid(known, e))?);
            }
            "order" => {
                order = match value.as_str() {
                    "-updated_at" => InboxOrder::NewestFirst,
                    "updated_at" => InboxOrder::OldestFirst,
                    _ => return Err(invalid(known, "expected `-updated_at` or `updated_at`")),
                };
            }
            "limit" => {
                limit = value
                    .parse::<u16>()
                    .ok()
                    .filter(|n| (1..=InboxQuery::MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        invalid(
                            known,
                            format!("expected an integer from 1 to {}", InboxQuery::MAX_LIMIT),
                        )
                    })?;
            }
            _ => cursor = Some(value.clone()),
        }
    }
    Ok(Parsed {
        query: InboxQuery {
            filter,
            order,
            after: None,
            limit,
        },
        cursor,
        kept: pairs
            .into_iter()
            .filter(|(name, _)| name != "cursor")
            .collect(),
    })
}

/// What a cursor is bound to: the business, the filters and the order (not the page
/// size, which a client may change between pages).
fn binding(business: BusinessId, filter: &InboxFilter, order: InboxOrder) -> [u8; 16] {
    let mut statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    statuses.sort_unstable();
    let assignee = match filter.assignee {
        None => String::new(),
        Some(AssigneeFilter::Unassigned) => "none".to_owned(),
        Some(AssigneeFilter::Agent(agent)) => agent.to_string(),
    };
    let micros = |t: Option<Timestamp>| t.map_or(String::new(), |t| t.unix_micros().to_string());
    let canonical = [
        business.to_string(),
        statuses.join(","),
        assignee,
        filter
            .customer_id
            .map(|c| c.to_string())
            .unwrap_or_default(),
        filter
            .channel_type
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        micros(filter.updated_after),
        micros(filter.updated_before),
        match order {
            InboxOrder::NewestFirst => "-updated_at".to_owned(),
            InboxOrder::OldestFirst => "updated_at".to_owned(),
        },
    ];
    let mut digest = Sha256::new();
    for part in canonical {
        digest.update((part.len() as u64).to_le_bytes());
        digest.update(part.as_bytes());
    }
    let full: [u8; 32] = digest.finalize().into();
    let mut bound = [0; 16];
    bound.copy_from_slice(&full[..16]);
    bound
}

const CURSOR_VERSION: u8 = 1;
/// version, updated_at (8), id (16), binding (16)
const PAYLOAD: usize = 1 + 8 + 16 + 16;
const TAG: usize = 16;

fn mac(key: &[u8; 32]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

fn encode_cursor(key: &[u8; 32], position: InboxPosition, bound: [u8; 16]) -> String {
    let mut bytes = Vec::with_capacity(PAYLOAD + TAG);
    bytes.push(CURSOR_VERSION);
    bytes.extend_from_slice(&position.updated_at.unix_micros().to_be_bytes());
    bytes.extend_from_slice(position.id.as_uuid().as_bytes());
    bytes.extend_from_slice(&bound);
    let mut signer = mac(key);
    signer.update(&bytes);
    let tag = signer.finalize().into_bytes();
    bytes.extend_from_slice(&tag[..TAG]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_cursor(key: &[u8; 32], cursor: &str, bound: [u8; 16]) -> Result<InboxPosition, ApiError> {
    let altered = || invalid("cursor", "not a cursor this service issued, or altered");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| altered())?;
    if bytes.len() != PAYLOAD + TAG || bytes.first() != Some(&CURSOR_VERSION) {
        return Err(altered());
    }
    let (payload, tag) = bytes.split_at(PAYLOAD);
    let mut verifier = mac(key);
    verifier.update(payload);
    verifier.verify_truncated_left(tag).map_err(|_| altered())?;
    if payload[25..] != bound {
        return Err(invalid(
            "cursor",
            "issued for other filters, another order or another business: list again \
             without `cursor`",
        ));
    }
    let micros = i64::from_be_bytes(payload[1..9].try_into().map_err(|_| altered())?);
    let id = uuid::Uuid::from_slice(&payload[9..25]).map_err(|_| altered())?;
    Ok(InboxPosition {
        updated_at: Timestamp::from_unix_micros(micros).map_err(|_| altered())?,
        id: ConversationId::from_uuid(id),
    })
}

/// A page of the inbox.
#[derive(Serialize, ToSchema)]
#[schema(as = ConversationList)]
pub struct ConversationListBody<'a> {
    /// The page's conversations (without their histories), in the requested order.
    #[schema(value_type = Vec<ConversationItemBody<'static>>)]
    data: Vec<ConversationItemBody<'a>>,
    /// Pass as `cursor` (with the same filters and order) for the next page; null on
    /// the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
    /// The business's latest event id when this page was read (same snapshot; 0 when
    /// there is none): follow `GET /api/v1/events?after=<this>` from the first page's
    /// value to keep a copy in sync without missing a change.
    #[schema(minimum = 0)]
    last_event_id: i64,
}

/// List conversations (the inbox)
///
/// The caller's business's conversations without their histories, most recently active
/// first by default, filtered and paged by key: a page costs the same at any depth, and
/// following `next_cursor` (or the `Link: rel="next"` header) never returns an item
/// twice in `-updated_at` order. A cursor works only with the filters, order and
/// business it was issued for.
#[utoipa::path(
    get,
    path = "/api/v1/conversations",
    operation_id = "listConversations",
    tag = "conversations",
    params(
        ("status" = Option<String>, Query,
            pattern = "^(open|pending|resolved|closed)(,(open|pending|resolved|closed))*$",
            description = "One or several statuses, comma-separated (`open,pending`).",
            example = "open,pending"),
        ("assignee_id" = Option<String>, Query,
            pattern = "^(none|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$",
            description = "An agent's id, or `none` for unassigned conversations."),
        ("customer_id" = Option<String>, Query, format = "uuid",
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
            description = "One customer's conversations."),
        ("channel_type" = Option<String>, Query, min_length = 1, max_length = 64,
            pattern = "^[^\\x00-\\x1f\\x7f]+$",
            description = "e.g. `email` (1 to 64 bytes, no control characters)."),
        ("updated_after" = Option<String>, Query, format = "date-time",
            pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$",
            description = "Changed strictly after this instant (RFC 3339, at most 6 \
                fractional digits)."),
        ("updated_before" = Option<String>, Query, format = "date-time",
            pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$",
            description = "Changed strictly before this instant (RFC 3339, at most 6 \
                fractional digits)."),
        ("order" = Option<String>, Query, pattern = "^-?updated_at$",
            description = "`-updated_at` (default, most recently active first) or `updated_at`."),
        ("limit" = Option<u16>, Query, minimum = 1, maximum = 100,
            description = "Page size, 1 to 100 (default 25)."),
        ("cursor" = Option<String>, Query, min_length = 1,
            description = "`next_cursor` of the previous page (opaque; any other value is a 400)."),
    ),
    security(("bearerAuth" = ["conversations:read"])),
    responses(
        (status = 200, description = "A page; `Link: <…>; rel=\"next\"` when another follows.",
            body = ConversationListBody<'static>),
    )
)]
pub(crate) async fn list_conversations(
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let principal = authorize(&req, &state, Scope::ConversationsRead)?;
    let Parsed {
        mut query,
        cursor,
        kept,
    } = parse(req.query_string())?;
    let key = state.tokens.cursor_key();
    let bound = binding(principal.business_id(), &query.filter, query.order);
    if let Some(cursor) = &cursor {
        query.after = Some(decode_cursor(key, cursor, bound)?);
    }
    let page = state
        .conversations
        .list_conversations(&principal, query)
        .await
        .map_err(|error| read_error(&req, &state, error))?;
    let next_cursor = page.next().map(|p| encode_cursor(key, p, bound));
    let body = ConversationListBody {
        data: page.items.iter().map(ConversationItemBody::new).collect(),
        next_cursor: next_cursor.clone(),
        last_event_id: page.last_event_id,
    };
    let json = serde_json::to_vec(&body).map_err(|error| {
        tracing::error!(%error, "serializing a page failed");
        ApiError::Internal
    })?;
    let mut response = HttpResponse::Ok();
    tenant_caching(&mut response);
    if let Some(cursor) = next_cursor {
        let mut pairs = kept;
        pairs.push(("cursor".to_owned(), cursor));
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        response.insert_header((
            header::LINK,
            format!("<{}?{query}>; rel=\"next\"", req.path()),
        ));
    }
    Ok(response.content_type("application/json").body(json))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn business(n: u128) -> BusinessId {
        BusinessId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn position() -> InboxPosition {
        InboxPosition {
            updated_at: Timestamp::from_unix_micros(1_700_000_000_123_456).unwrap(),
            id: ConversationId::from_uuid(uuid::Uuid::from_u128(42)),
        }
    }

    #[test]
    fn cursors_round_trip_and_are_bound() {
        let key = [7; 32];
        let filter = parse("status=open,pending&limit=7").unwrap().query.filter;
        let bound = binding(business(1), &filter, InboxOrder::NewestFirst);
        let cursor = encode_cursor(&key, position(), bound);
        assert_eq!(decode_cursor(&key, &cursor, bound).unwrap(), position());
        // Another business, other filters, another order: refused.
        for other in [
            binding(business(2), &filter, InboxOrder::NewestFirst),
            binding(
                business(1),
                &InboxFilter::default(),
                InboxOrder::NewestFirst,
            ),
            binding(business(1), &filter, InboxOrder::OldestFirst),
        ] {
            assert!(decode_cursor(&key, &cursor, other).is_err());
        }
        // Status order does not matter; the page size is not bound.
        let reordered = parse("status=pending,open").unwrap().query.filter;
        assert_eq!(
            binding(business(1), &reordered, InboxOrder::NewestFirst),
            bound
        );
        // Any altered byte, another key, garbage: refused.
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&cursor)
            .unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 1;
            let altered = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
            assert!(decode_cursor(&key, &altered, bound).is_err(), "byte {i}");
            bytes[i] ^= 1;
        }
        assert!(decode_cursor(&[8; 32], &cursor, bound).is_err());
        assert!(decode_cursor(&key, "!!", bound).is_err());
        assert!(decode_cursor(&key, "", bound).is_err());
    }

    #[test]
    fn every_invalid_parameter_is_named() {
        for (query, name) in [
            ("status=done", "status"),
            ("assignee_id=me", "assignee_id"),
            ("customer_id=1", "customer_id"),
            ("channel_type=", "channel_type"),
            ("updated_after=yesterday", "updated_after"),
            ("updated_before=2024-13-01T00:00:00Z", "updated_before"),
            ("order=newest", "order"),
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("limit=x", "limit"),
            ("limit=1&limit=2", "limit"),
            ("colour=red", "colour"),
        ] {
            match parse(query) {
                Err(ApiError::BadRequest(detail)) => {
                    assert!(detail.contains(&format!("`{name}`")), "{query}: {detail}")
                }
                Err(other) => panic!("{query}: {other:?}"),
                Ok(_) => panic!("{query}: accepted"),
            }
        }
        let parsed =
            parse("status=open&status=pending,open&assignee_id=none&order=updated_at").unwrap();
        assert_eq!(
            parsed.query.filter.statuses,
            [Status::Open, Status::Pending]
        );
        assert_eq!(
            parsed.query.filter.assignee,
            Some(AssigneeFilter::Unassigned)
        );
        assert_eq!(parsed.query.order, InboxOrder::OldestFirst);
        assert_eq!(parsed.query.limit, 25);
    }
}
