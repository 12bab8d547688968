use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// Why a string is not an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("expected a UUID in the hyphenated form (8-4-4-4-12 hex digits)")]
    NotHyphenatedUuid,
}

/// Parses the one textual form the API accepts: 36 characters, hyphens at 8, 13, 18
/// and 23, hex digits in any letter case. `uuid`'s own parser also takes the simple,
/// braced and URN forms; accepting those would make two spellings of one id.
fn parse_hyphenated(input: &str) -> Result<Uuid, IdError> {
    let bytes = input.as_bytes();
    if bytes.len() != 36 {
        return Err(IdError::NotHyphenatedUuid);
    }
    for (i, b) in bytes.iter().enumerate() {
        let ok = match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        };
        if !ok {
            return Err(IdError::NotHyphenatedUuid);
        }
    }
    Uuid::try_parse(input).map_err(|_| IdError::NotHyphenatedUuid)
}

macro_rules! uuid_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// Parses the hyphenated form, any letter case.
            pub fn parse(input: &str) -> Result<Self, IdError> {
                parse_hyphenated(input).map(Self)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            pub const fn into_uuid(self) -> Uuid {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        /// Lower-case hyphenated, the only form the service prints.
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }
    };
}

uuid_newtype!(
    /// A conversation between a business and one of its customers.
    ConversationId
);
uuid_newtype!(
    /// A business (tenant): the unit of data isolation.
    BusinessId
);
uuid_newtype!(
    /// A customer of a business.
    CustomerId
);
uuid_newtype!(
    /// An agent of a business (the conversation's assignee).
    AgentId
);
uuid_newtype!(
    /// The channel record (a widget install, a mailbox, a phone number…).
    ChannelId
);
uuid_newtype!(
    /// A message within a conversation.
    MessageId
);
uuid_newtype!(
    /// Who sent a message: an agent or customer id, as recorded by the channel.
    SenderId
);
uuid_newtype!(
    /// A file attached to a message.
    AttachmentId
);
uuid_newtype!(
    /// A business's webhook endpoint.
    WebhookId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_hyphenated_any_case_and_prints_lower_case() {
        let id = ConversationId::parse("C3D4E5F6-A7B8-9012-CDEF-123456789012").unwrap();
        assert_eq!(id.to_string(), "c3d4e5f6-a7b8-9012-cdef-123456789012");
    }

    #[test]
    fn rejects_other_forms_and_junk() {
        for bad in [
            "",
            "42",
            "c3d4e5f6a7b89012cdef123456789012",
            "{c3d4e5f6-a7b8-9012-cdef-123456789012}",
            "urn:uuid:c3d4e5f6-a7b8-9012-cdef-123456789012",
            "g7b8c9d0-e1f2-3456-abcd-567890123456",
            "c3d4e5f6-a7b8-9012-cdef-12345678901",
            "c3d4e5f6-a7b8-9012-cdef-1234567890123",
            "c3d4e5f6+a7b8-9012-cdef-123456789012",
            "c3d4e5f6-a7b8-9012-cdef-12345678901é",
        ] {
            assert_eq!(
                MessageId::parse(bad),
                Err(IdError::NotHyphenatedUuid),
                "{bad}"
            );
        }
    }
}
