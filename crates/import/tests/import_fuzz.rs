//! Property tests of the import parser: arbitrary or corrupted input is reported as
//! invalid (exit code 2), never a panic, a hang or an internal error. `make fuzz`
//! runs many more cases (PROPTEST_CASES).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use pingback_application::{ConversationBatches, ConversationImporter, ImportError, ImportSummary};
use pingback_domain::BusinessId;
use pingback_import::testing::conversation_json;
use pingback_import::{ImportFileError, NoProgress, generate, import_file};
use proptest::prelude::*;

/// Accepts everything it is given, like a store that always commits.
struct Accepting;

#[async_trait]
impl ConversationImporter for Accepting {
    async fn import(&self, mut batches: ConversationBatches) -> Result<ImportSummary, ImportError> {
        let mut summary = ImportSummary::default();
        while let Some(batch) = batches.next().await {
            for conversation in batch? {
                summary.conversations += 1;
                summary.messages += conversation.messages().len() as u64;
            }
        }
        Ok(summary)
    }
}

fn run(bytes: Vec<u8>) -> Result<ImportSummary, ImportFileError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        import_file(
            Arc::new(Accepting),
            "fuzz.json",
            std::io::Cursor::new(bytes),
            Arc::new(NoProgress),
        )
        .await
        .map(|outcome| outcome.summary)
    })
}

/// A valid file: generated conversations in the API's own JSON shape.
fn valid_document() -> Vec<u8> {
    let business = BusinessId::parse("b2c3d4e5-f6a7-8901-bcde-f12345678901").unwrap();
    let conversations: Vec<_> = generate(business, 2, 3, 9)
        .map(|c| conversation_json(&c))
        .collect();
    serde_json::to_vec(&conversations).unwrap()
}

fn assert_reported(result: Result<ImportSummary, ImportFileError>) -> Result<(), TestCaseError> {
    if let Err(error) = result {
        prop_assert_eq!(
            error.exit_code(),
            2,
            "not reported as invalid input: {}",
            error
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_bytes_are_invalid_input(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let result = run(bytes);
        let reported = matches!(result, Err(ImportFileError::Invalid { .. }) | Ok(_));
        prop_assert!(reported, "unexpected outcome");
        assert_reported(result)?;
    }

    #[test]
    fn a_corrupted_byte_is_reported_not_crashed(position in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut document = valid_document();
        let at = position.index(document.len());
        document[at] = byte;
        assert_reported(run(document))?;
    }

    #[test]
    fn a_truncated_file_is_invalid(position in any::<prop::sample::Index>()) {
        let mut document = valid_document();
        let at = position.index(document.len());
        document.truncate(at);
        let invalid = matches!(run(document), Err(ImportFileError::Invalid { .. }));
        prop_assert!(invalid, "a truncated file was accepted");
    }
}

#[test]
fn the_valid_document_imports() {
    let summary = run(valid_document()).unwrap();
    assert_eq!(summary.conversations, 2);
    assert_eq!(summary.messages, 6);
}
