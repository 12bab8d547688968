//! The inbox listing, shared by both adapters: one keyset-paged statement over the
//! conversation rows, with the same filters, order and limit on both. SQLite joins
//! their customer and latest message by key, then reads the attachments of those latest
//! messages and the last event id in the same transaction; PostgreSQL reads everything
//! in ONE statement built around the conversation rows alone (`inbox_read`).
//!
//! The page starts at its cursor with `updated_at <= t AND (updated_at < t OR id < i)`
//! (mirrored for the other order): the first conjunct is the index range's bound, so a
//! page 10,000 deep costs what the first one costs; the second drops the rows up to
//! and including the cursor itself.

use std::collections::HashMap;

use pingback_domain::{Attachment, ConversationSummary, InboxPage, InboxQuery};

use crate::rows::{self, AttachmentRow, ConversationRow, CorruptRow, CustomerRow, MessageRow};
use crate::schema::DbUuid;

/// A listed conversation row: with its customer, its latest message and its count.
pub(crate) type InboxRecord = (
    ConversationRow,
    Option<CustomerRow>,
    Option<MessageRow>,
    i64,
);

/// An attachment of a listed latest message.
pub(crate) type InboxAttachment = (DbUuid, AttachmentRow);

/// The page statement for backend `$backend`, boxed (its filters are optional): the
/// conversation rows with their customer and latest message, joined by key (SQLite).
/// It fetches one row more than the limit, which says whether another page follows.
macro_rules! inbox_query {
    ($backend:ty, $business:expr, $query:expr) => {{
        use diesel::{
            BoolExpressionMethods, ExpressionMethods, JoinOnDsl, NullableExpressionMethods,
            QueryDsl, SelectableHelper,
        };
        use $crate::schema::{conversations as c, customers as cu, messages as m};
        let statement = c::table
            .left_join(
                cu::table.on(cu::business_id
                    .eq(c::business_id)
                    .and(cu::id.nullable().eq(c::customer_id))),
            )
            .left_join(
                m::table.on(m::business_id
                    .eq(c::business_id)
                    .and(m::id.nullable().eq(c::last_message_id))),
            )
            .filter(c::business_id.eq($business))
            .select((
                $crate::rows::ConversationRow::as_select(),
                Option::<$crate::rows::CustomerRow>::as_select(),
                Option::<$crate::rows::MessageRow>::as_select(),
                c::message_count,
            ))
            .into_boxed::<$backend>();
        $crate::inbox::inbox_page!(statement, $query)
    }};
}
pub(crate) use inbox_query;

/// The page of conversation rows alone (PostgreSQL, `inbox_read`, which looks up their
/// customer, latest message and its attachments for the page's rows only): the
/// conversation, its message count and its latest message's id.
macro_rules! inbox_conversations_query {
    ($business:expr, $query:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl, SelectableHelper};
        use $crate::schema::conversations as c;
        let statement = c::table
            .filter(c::business_id.eq($business))
            .select((
                $crate::rows::ConversationRow::as_select(),
                c::message_count,
                c::last_message_id,
            ))
            .into_boxed::<diesel::pg::Pg>();
        $crate::inbox::inbox_page!(statement, $query)
    }};
}
pub(crate) use inbox_conversations_query;

/// `$statement` (boxed, over `conversations`) with the query's filters, its order and
/// its limit plus one.
macro_rules! inbox_page {
    ($statement:expr, $query:expr) => {{
        use diesel::{BoolExpressionMethods, ExpressionMethods, QueryDsl};
        use pingback_domain::{AssigneeFilter, InboxOrder};
        use $crate::schema::conversations as c;
        use $crate::schema::{DbUuid, Micros};
        let query: &pingback_domain::InboxQuery = $query;
        let filter = &query.filter;
        let mut statement = $statement;
        match filter.statuses.as_slice() {
            [] => {}
            // `status = $n` pins the index's second column, so the status index gives
            // the order; `= ANY($n)` would not (PostgreSQL < 17 sorts instead).
            [status] => statement = statement.filter(c::status.eq(status.as_str())),
            // Several statuses: one scan filtered by status, or a sort of the matches.
            several => {
                let statuses: Vec<&'static str> = several.iter().map(|s| s.as_str()).collect();
                statement = statement.filter(c::status.eq_any(statuses));
            }
        }
        match filter.assignee {
            Some(AssigneeFilter::Unassigned) => {
                statement = statement.filter(c::assignee_id.is_null());
            }
            Some(AssigneeFilter::Agent(agent)) => {
                statement = statement.filter(c::assignee_id.eq(DbUuid::from(agent)));
            }
            None => {}
        }
        if let Some(customer) = filter.customer_id {
            statement = statement.filter(c::customer_id.eq(DbUuid::from(customer)));
        }
        if let Some(channel) = &filter.channel_type {
            statement = statement.filter(c::channel_type.eq(channel.as_str().to_owned()));
        }
        if let Some(after) = filter.updated_after {
            statement = statement.filter(c::updated_at.gt(Micros(after.unix_micros())));
        }
        if let Some(before) = filter.updated_before {
            statement = statement.filter(c::updated_at.lt(Micros(before.unix_micros())));
        }
        let at = query
            .after
            .map(|p| (Micros(p.updated_at.unix_micros()), DbUuid::from(p.id)));
        match query.order {
            InboxOrder::NewestFirst => {
                if let Some((t, id)) = at {
                    statement = statement
                        .filter(c::updated_at.le(t))
                        .filter(c::updated_at.lt(t).or(c::id.lt(id)));
                }
                statement = statement.order_by((c::updated_at.desc(), c::id.desc()));
            }
            InboxOrder::OldestFirst => {
                if let Some((t, id)) = at {
                    statement = statement
                        .filter(c::updated_at.ge(t))
                        .filter(c::updated_at.gt(t).or(c::id.gt(id)));
                }
                statement = statement.order_by((c::updated_at.asc(), c::id.asc()));
            }
        }
        statement.limit(i64::from(query.limit) + 1)
    }};
}
pub(crate) use inbox_page;

/// The attachments of the listed latest messages, in their order.
macro_rules! inbox_attachments_query {
    ($business:expr, $messages:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl, SelectableHelper};
        use $crate::schema::attachments as a;
        a::table
            .filter(a::business_id.eq($business))
            .filter(a::message_id.eq_any($messages))
            .order_by((a::message_id, a::position))
            .select((a::message_id, $crate::rows::AttachmentRow::as_select()))
    }};
}
pub(crate) use inbox_attachments_query;

/// The ids of the latest messages a page lists, for the attachments query (not the
/// look-ahead row's, which only says whether another page follows).
pub(crate) fn latest_messages(query: &InboxQuery, records: &[InboxRecord]) -> Vec<DbUuid> {
    records
        .iter()
        .take(usize::from(query.limit))
        .filter_map(|(_, _, message, _)| message.as_ref().map(|m| m.id))
        .collect()
}

/// The page from its rows (SQLite): at most `query.limit` items, `has_more` from the
/// extra row, each latest message with its attachments.
pub(crate) fn page(
    query: &InboxQuery,
    records: Vec<InboxRecord>,
    attachments: Vec<InboxAttachment>,
    last_event_id: i64,
) -> Result<InboxPage, CorruptRow> {
    let mut by_message: HashMap<DbUuid, Vec<AttachmentRow>> = HashMap::new();
    for (message, row) in attachments {
        by_message.entry(message).or_default().push(row);
    }
    let records = records
        .into_iter()
        .map(|record| {
            let own = record
                .2
                .as_ref()
                .and_then(|m| by_message.remove(&m.id))
                .unwrap_or_default();
            (record, own)
        })
        .collect();
    page_of(query, records, last_event_id)
}

/// The page from its rows, each with the attachments of its latest message in their
/// order: at most `query.limit` items, `has_more` from the extra row.
pub(crate) fn page_of(
    query: &InboxQuery,
    mut records: Vec<(InboxRecord, Vec<AttachmentRow>)>,
    last_event_id: i64,
) -> Result<InboxPage, CorruptRow> {
    let limit = usize::from(query.limit);
    let has_more = records.len() > limit;
    records.truncate(limit);
    let items = records
        .into_iter()
        .map(|((conversation, customer, message, count), attachments)| {
            let last_message = message
                .map(|m| {
                    let attachments = attachments
                        .into_iter()
                        .map(rows::attachment)
                        .collect::<Result<Vec<Attachment>, _>>()?;
                    rows::message(m, attachments)
                })
                .transpose()?;
            Ok(ConversationSummary {
                conversation: rows::assemble((conversation, customer), Vec::new())?,
                message_count: u64::try_from(count)
                    .map_err(|e| rows::corrupt("conversation message_count", e))?,
                last_message,
            })
        })
        .collect::<Result<_, CorruptRow>>()?;
    Ok(InboxPage {
        items,
        has_more,
        last_event_id,
    })
}
