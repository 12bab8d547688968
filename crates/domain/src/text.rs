use std::fmt;

/// Why a string or number is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("contains a NUL character")]
    Nul,
    #[error("longer than {max} bytes")]
    TooLong { max: usize },
    #[error("must not be empty")]
    Empty,
    #[error("contains a control character")]
    Control,
    #[error("must be between 0 and {max}")]
    OutOfRange { max: u64 },
}

/// Free text (message content, names, file names…): any Unicode but NUL, which no
/// SQL text type can store, up to [`Text::MAX_BYTES`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Text(String);

impl Text {
    /// One mebibyte bounds what a single field can cost a request, far above real
    /// messages (email bodies included).
    pub const MAX_BYTES: usize = 1024 * 1024;

    pub fn new(value: impl Into<String>) -> Result<Self, TextError> {
        let value = value.into();
        if value.len() > Self::MAX_BYTES {
            return Err(TextError::TooLong {
                max: Self::MAX_BYTES,
            });
        }
        if value.contains('\0') {
            return Err(TextError::Nul);
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The kind of channel a conversation came through (`widget`, `email`, `sms`, …).
/// Open-ended on purpose: new channels must not need a release. Non-empty, at most
/// 64 bytes, no control characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ChannelType(String);

impl ChannelType {
    pub const MAX_BYTES: usize = 64;

    pub fn new(value: impl Into<String>) -> Result<Self, TextError> {
        let value = value.into();
        if value.is_empty() {
            return Err(TextError::Empty);
        }
        if value.len() > Self::MAX_BYTES {
            return Err(TextError::TooLong {
                max: Self::MAX_BYTES,
            });
        }
        if value.contains('\0') {
            return Err(TextError::Nul);
        }
        if value.chars().any(char::is_control) {
            return Err(TextError::Control);
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ChannelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A file's size in bytes; bounded by what a signed 64-bit column stores.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ByteSize(u64);

impl ByteSize {
    pub const MAX: u64 = i64::MAX as u64;

    pub fn new(bytes: u64) -> Result<Self, TextError> {
        if bytes > Self::MAX {
            return Err(TextError::OutOfRange { max: Self::MAX });
        }
        Ok(Self(bytes))
    }

    pub fn from_i64(bytes: i64) -> Result<Self, TextError> {
        u64::try_from(bytes)
            .map_err(|_| TextError::OutOfRange { max: Self::MAX })
            .and_then(Self::new)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    /// Always fits: the constructor bounds the value.
    pub fn as_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_refuses_nul_and_oversize() {
        assert_eq!(Text::new("a\0b"), Err(TextError::Nul));
        assert!(Text::new("x".repeat(Text::MAX_BYTES)).is_ok());
        assert_eq!(
            Text::new("x".repeat(Text::MAX_BYTES + 1)),
            Err(TextError::TooLong {
                max: Text::MAX_BYTES
            })
        );
        assert_eq!(Text::new("héllo 👋").unwrap().as_str(), "héllo 👋");
    }

    #[test]
    fn channel_type_rules() {
        assert_eq!(ChannelType::new(""), Err(TextError::Empty));
        assert_eq!(ChannelType::new("we\nb"), Err(TextError::Control));
        assert!(ChannelType::new("whatsapp").is_ok());
        assert!(ChannelType::new("x".repeat(65)).is_err());
    }

    #[test]
    fn byte_size_bounds() {
        assert!(ByteSize::new(0).is_ok());
        assert!(ByteSize::from_i64(-1).is_err());
        assert!(ByteSize::new(u64::MAX).is_err());
        assert_eq!(ByteSize::from_i64(i64::MAX).unwrap().as_i64(), i64::MAX);
    }
}
