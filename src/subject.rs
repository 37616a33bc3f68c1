//! Validated NATS names: publish subjects, subscription patterns, stream and
//! consumer names. Nothing reaches NATS without passing through one of these
//! types, because the server itself accepts (and stores) much that is wrong,
//! e.g. a publish to `orders.*` is stored under the literal subject `orders.*`.

use std::fmt;

/// Longest subject accepted, in bytes. NATS has no hard limit short of its
/// 4 KiB control line; market-data subjects are far below this.
pub const MAX_SUBJECT_LEN: usize = 512;

/// Longest stream or consumer name accepted (JetStream stores them as file
/// names, so they must stay well below common file-name limits).
pub const MAX_NAME_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("subject is empty")]
    Empty,
    #[error("subject is {len} bytes long; the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("subject has an empty token (leading, trailing or double '.')")]
    EmptyToken,
    #[error("subject contains whitespace or a control character at byte {at}")]
    BadCharacter { at: usize },
    #[error("a publish subject must not contain the wildcard token '{0}'")]
    Wildcard(char),
    #[error("'>' is only allowed as the last token")]
    FullWildcardNotLast,
    #[error("subject is not valid UTF-8 after percent-decoding")]
    NotUtf8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name is {len} bytes long; the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error(
        "name must not contain {0:?} ('.', '*', '>', '/', '\\\\', whitespace and control characters are not allowed)"
    )]
    BadCharacter(char),
}

/// Checks the rules every subject shares and returns its tokens' iterator.
fn check_common(s: &str) -> Result<(), SubjectError> {
    if s.is_empty() {
        return Err(SubjectError::Empty);
    }
    if s.len() > MAX_SUBJECT_LEN {
        return Err(SubjectError::TooLong {
            len: s.len(),
            max: MAX_SUBJECT_LEN,
        });
    }
    if let Some((at, _)) = s
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || c.is_control())
    {
        return Err(SubjectError::BadCharacter { at });
    }
    if s.split('.').any(str::is_empty) {
        return Err(SubjectError::EmptyToken);
    }
    Ok(())
}

/// A literal subject a message can be published to: no wildcard tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct Subject(async_nats::Subject);

impl Subject {
    pub fn parse(s: &str) -> Result<Self, SubjectError> {
        check_common(s)?;
        for token in s.split('.') {
            match token {
                "*" => return Err(SubjectError::Wildcard('*')),
                ">" => return Err(SubjectError::Wildcard('>')),
                _ => {}
            }
        }
        Ok(Self(async_nats::Subject::from(s)))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The subject in async-nats' type; a cheap reference-counted clone.
    pub fn to_nats(&self) -> async_nats::Subject {
        self.0.clone()
    }
}

/// A subscription subject: `*` matches one token, a final `>` one or more.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectPattern(String);

impl SubjectPattern {
    pub fn parse(s: &str) -> Result<Self, SubjectError> {
        check_common(s)?;
        let mut tokens = s.split('.').peekable();
        while let Some(token) = tokens.next() {
            if token == ">" && tokens.peek().is_some() {
                return Err(SubjectError::FullWildcardNotLast);
            }
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when the pattern has no wildcard token.
    pub fn is_literal(&self) -> bool {
        !self.0.split('.').any(|t| t == "*" || t == ">")
    }

    /// Does the literal `subject` match this pattern?
    pub fn matches(&self, subject: &str) -> bool {
        let mut subject_tokens = subject.split('.');
        for token in self.0.split('.') {
            match (token, subject_tokens.next()) {
                (">", Some(_)) => return true,
                ("*", Some(_)) => {}
                (literal, Some(other)) if literal == other => {}
                _ => return false,
            }
        }
        subject_tokens.next().is_none()
    }

    /// Could a single subject match both patterns? (nats-server's SubjectsCollide.)
    pub fn overlaps(&self, other: &SubjectPattern) -> bool {
        let mut a = self.0.split('.');
        let mut b = other.0.split('.');
        loop {
            match (a.next(), b.next()) {
                (None, None) => return true,
                (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
                (Some(x), Some(y)) if x == y || x == "*" || y == "*" => {}
                _ => return false,
            }
        }
    }

    /// Is every subject matched by `self` also matched by `other`?
    pub fn is_subset_of(&self, other: &SubjectPattern) -> bool {
        let mut mine = self.0.split('.');
        for theirs in other.0.split('.') {
            match (theirs, mine.next()) {
                (_, None) => return false,
                (">", Some(_)) => return true,
                (_, Some(">")) => return false,
                ("*", Some(_)) => {}
                (literal, Some(token)) if literal == token => {}
                _ => return false,
            }
        }
        mine.next().is_none()
    }
}

/// Shared rule for JetStream stream and consumer names.
fn check_name(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            len: s.len(),
            max: MAX_NAME_LEN,
        });
    }
    match s
        .chars()
        .find(|c| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace() || c.is_control())
    {
        Some(c) => Err(NameError::BadCharacter(c)),
        None => Ok(()),
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, NameError> {
                check_name(s)?;
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A JetStream stream name.
    StreamName
);
name_type!(
    /// A JetStream consumer (durable) name.
    ConsumerName
);

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.as_str())
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
    )*};
}

display_as_str!(Subject, SubjectPattern, StreamName, ConsumerName);

#[cfg(test)]
#[path = "subject_tests.rs"]
mod tests;
