//! The one error shape every HTTP endpoint answers with.
//!
//! `{"error": {"code": "snake_case_code", "message": "a sentence for people", "field": "…"}}` —
//! `code` is stable and meant for programs, `message` for people, and `field` (only on
//! validation errors) names the offending input field.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, for programs (`code`) and for people (`message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code, e.g. `validation_failed`, `invalid_token`, `conflict`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// The input field at fault, on validation errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
