//! The queries both adapters build, as macros: Diesel types a query by its backend,
//! so each adapter expands the same description for its own.

/// The conversation `$id` of business `$business` joined with its customer (in the
/// same business), for the reads below to select from.
macro_rules! conversation_in_business {
    ($business:expr, $id:expr) => {{
        use diesel::{
            BoolExpressionMethods, ExpressionMethods, JoinOnDsl, NullableExpressionMethods,
            QueryDsl,
        };
        use $crate::schema::{conversations, customers};
        conversations::table
            .left_join(
                customers::table.on(customers::business_id
                    .eq(conversations::business_id)
                    .and(customers::id.nullable().eq(conversations::customer_id))),
            )
            .filter(conversations::business_id.eq($business))
            .filter(conversations::id.eq($id))
    }};
}
pub(crate) use conversation_in_business;

/// The conversation and its customer, in one business only.
macro_rules! conversation_query {
    ($business:expr, $id:expr) => {{
        use diesel::{QueryDsl, SelectableHelper};
        $crate::rows::conversation_in_business!($business, $id).select((
            $crate::rows::ConversationRow::as_select(),
            Option::<$crate::rows::CustomerRow>::as_select(),
        ))
    }};
}
pub(crate) use conversation_query;

/// The revisions of a conversation and its customer, in one business only: what
/// validates a cached copy, without the history.
macro_rules! revision_query {
    ($business:expr, $id:expr) => {{
        use diesel::{NullableExpressionMethods, QueryDsl};
        use $crate::schema::{conversations, customers};
        $crate::rows::conversation_in_business!($business, $id).select((
            conversations::business_id,
            conversations::id,
            conversations::revision,
            customers::revision.nullable(),
        ))
    }};
}
pub(crate) use revision_query;

/// The history with its attachments, in history order, attachments in their order.
macro_rules! history_query {
    ($business:expr, $id:expr) => {{
        use diesel::{
            BoolExpressionMethods, ExpressionMethods, JoinOnDsl, NullableExpressionMethods,
            QueryDsl, SelectableHelper,
        };
        use $crate::schema::{attachments, messages};
        messages::table
            .left_join(
                attachments::table.on(attachments::business_id
                    .eq(messages::business_id)
                    .and(attachments::conversation_id.eq(messages::conversation_id))
                    .and(attachments::message_id.eq(messages::id))),
            )
            .filter(messages::business_id.eq($business))
            .filter(messages::conversation_id.eq($id))
            .order_by((
                messages::created_at,
                messages::id,
                attachments::position.nullable(),
            ))
            .select((
                $crate::rows::MessageRow::as_select(),
                Option::<$crate::rows::AttachmentRow>::as_select(),
            ))
    }};
}
pub(crate) use history_query;

/// The SET clause of the customers upsert: every column but the key.
macro_rules! customer_upsert {
    () => {{
        use diesel::ExpressionMethods;
        use diesel::upsert::excluded;
        use $crate::schema::customers as t;
        (
            t::name.eq(excluded(t::name)),
            t::email.eq(excluded(t::email)),
            t::phone.eq(excluded(t::phone)),
            t::external_id.eq(excluded(t::external_id)),
            t::created_at.eq(excluded(t::created_at)),
            t::revision.eq(t::revision + 1),
        )
    }};
}
pub(crate) use customer_upsert;

/// The SET clause of the conversations upsert: every column but the key.
macro_rules! conversation_upsert {
    () => {{
        use diesel::ExpressionMethods;
        use diesel::upsert::excluded;
        use $crate::schema::conversations as t;
        (
            t::customer_id.eq(excluded(t::customer_id)),
            t::assignee_id.eq(excluded(t::assignee_id)),
            t::status.eq(excluded(t::status)),
            t::channel_type.eq(excluded(t::channel_type)),
            t::channel_id.eq(excluded(t::channel_id)),
            t::created_at.eq(excluded(t::created_at)),
            t::updated_at.eq(excluded(t::updated_at)),
            t::first_response_at.eq(excluded(t::first_response_at)),
            t::message_count.eq(excluded(t::message_count)),
            t::last_message_id.eq(excluded(t::last_message_id)),
            t::revision.eq(t::revision + 1),
        )
    }};
}
pub(crate) use conversation_upsert;

/// The rows of table `$table` (`conversations`, `customers`, `messages` or
/// `attachments`) with one of `$ids`, in any business, as their keys (the tuples of
/// `import::Existing`): what an import checks before writing a batch.
macro_rules! existing_query {
    (conversations, $ids:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        use $crate::schema::conversations as t;
        t::table
            .filter(t::id.eq_any($ids))
            .select((t::business_id, t::id))
    }};
    (customers, $ids:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        use $crate::schema::customers as t;
        t::table
            .filter(t::id.eq_any($ids))
            .select((t::business_id, t::id))
    }};
    (messages, $ids:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        use $crate::schema::messages as t;
        t::table
            .filter(t::id.eq_any($ids))
            .select((t::business_id, t::conversation_id, t::id))
    }};
    (attachments, $ids:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        use $crate::schema::attachments as t;
        t::table.filter(t::id.eq_any($ids)).select((
            t::business_id,
            t::conversation_id,
            t::message_id,
            t::id,
        ))
    }};
}
pub(crate) use existing_query;

/// The import's write sequence for one batch's [`BatchRows`](crate::rows::BatchRows),
/// in order: upsert the customers, upsert the conversations, delete the messages of
/// the conversations being replaced (their attachments cascade), insert the messages,
/// then the attachments. Each statement is bound to `$statement` and handed to
/// `$execute`, which runs it the adapter's way (awaited, or on the blocking thread);
/// multi-row INSERTs stay under `$max_binds` bind parameters, id lists under
/// `$max_ids` ids.
macro_rules! write_batch {
    ($rows:expr, max_binds: $max_binds:expr, max_ids: $max_ids:expr, |$statement:ident| $execute:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        use $crate::schema::{attachments, conversations, customers, messages};
        let rows: &$crate::rows::BatchRows<'_> = &$rows;
        for chunk in rows
            .customers
            .chunks($max_binds / $crate::rows::CUSTOMER_COLUMNS)
        {
            let $statement = diesel::insert_into(customers::table)
                .values(chunk)
                .on_conflict((customers::business_id, customers::id))
                .do_update()
                .set($crate::rows::customer_upsert!());
            $execute;
        }
        for chunk in rows
            .conversations
            .chunks($max_binds / $crate::rows::CONVERSATION_COLUMNS)
        {
            let $statement = diesel::insert_into(conversations::table)
                .values(chunk)
                .on_conflict((conversations::business_id, conversations::id))
                .do_update()
                .set($crate::rows::conversation_upsert!());
            $execute;
        }
        for (business, ids) in &rows.replaced {
            for chunk in ids.chunks($max_ids) {
                let $statement = diesel::delete(
                    messages::table
                        .filter(messages::business_id.eq(business))
                        .filter(messages::conversation_id.eq_any(chunk)),
                );
                $execute;
            }
        }
        for chunk in rows
            .messages
            .chunks($max_binds / $crate::rows::MESSAGE_COLUMNS)
        {
            let $statement = diesel::insert_into(messages::table).values(chunk);
            $execute;
        }
        for chunk in rows
            .attachments
            .chunks($max_binds / $crate::rows::ATTACHMENT_COLUMNS)
        {
            let $statement = diesel::insert_into(attachments::table).values(chunk);
            $execute;
        }
    }};
}
pub(crate) use write_batch;

#[cfg(test)]
mod tests {
    use diesel::pg::Pg;
    use diesel::sqlite::Sqlite;

    use crate::schema::DbUuid;

    /// Every read is single-business: each table it touches is constrained by
    /// `business_id`, in the WHERE clause or the join condition. That keeps reads on
    /// one shard when the tables are distributed by business (docs/scaling.md).
    fn assert_scoped(sql: &str, tables: &[&str]) {
        // SQLite quotes with backticks, PostgreSQL with double quotes.
        let sql = &sql.replace('`', "\"");
        let (_, where_clause) = sql.split_once(" WHERE ").expect("a WHERE clause");
        for table in tables {
            let column = format!("\"{table}\".\"business_id\"");
            assert!(
                sql.contains(&column),
                "{table} not constrained by business in: {sql}"
            );
        }
        assert!(
            where_clause.contains("\"business_id\" = $1")
                || where_clause.contains("\"business_id\" = ?"),
            "{sql}"
        );
    }

    #[test]
    fn every_read_filters_by_business() {
        let nil = DbUuid(uuid::Uuid::nil());
        for sql in [
            diesel::debug_query::<Pg, _>(&conversation_query!(nil, nil)).to_string(),
            diesel::debug_query::<Sqlite, _>(&conversation_query!(nil, nil)).to_string(),
        ] {
            assert_scoped(&sql, &["conversations", "customers"]);
            let sql = sql.replace('`', "\"");
            assert!(
                sql.contains("\"customers\".\"business_id\" = \"conversations\".\"business_id\""),
                "{sql}"
            );
        }
        for sql in [
            diesel::debug_query::<Pg, _>(&revision_query!(nil, nil)).to_string(),
            diesel::debug_query::<Sqlite, _>(&revision_query!(nil, nil)).to_string(),
        ] {
            assert_scoped(&sql, &["conversations", "customers"]);
        }
        for sql in [
            diesel::debug_query::<Pg, _>(&history_query!(nil, nil)).to_string(),
            diesel::debug_query::<Sqlite, _>(&history_query!(nil, nil)).to_string(),
        ] {
            assert_scoped(&sql, &["messages", "attachments"]);
            let sql = sql.replace('`', "\"");
            assert!(
                sql.contains("\"attachments\".\"business_id\" = \"messages\".\"business_id\""),
                "{sql}"
            );
        }
    }
}
