//! OpenAPI import and export: AWS-style documents (OpenAPI 3.0/3.1 and Swagger 2.0, YAML or
//! JSON, with the `x-amazon-apigateway-*` extensions) to the Causeway resources a user would
//! write, and back.
//!
//! Pure, like the rest of this crate: the caller reads files and passes text. `$ref`s are
//! resolved inside the document only; nothing is ever fetched.
//!
//! Nothing is dropped silently. Every construct the importer does not carry over is a
//! [`Note`] with the JSON pointer of the construct and the reason. A note of kind
//! [`NoteKind::Security`] (an authorizer, security requirement or resource policy that cannot
//! be mapped) makes [`import`] fail with [`ImportError::Insecure`] unless
//! [`ImportOptions::allow_insecure_drop`] is set; with it, the requirement is dropped and the
//! route is served without it, which the note says.

mod document;
mod export;
mod import;
mod mapping;
mod report;

pub use export::{ExportFormat, ExportOptions, Exported, export};
pub use import::{ImportOptions, Imported, StageChoice, import, import_value};
pub use mapping::{CognitoTarget, FunctionTarget, ImportMapping, SigV4Target, VpcLinkTarget};
pub use report::{ImportError, Note, NoteKind};

/// Extension keys Causeway adds to an export so that a re-import gives back exactly the same
/// resources (AWS ignores `x-` keys it does not know).
pub mod causeway_extensions {
    /// On the document: the `Api` spec (without models, which are `components.schemas`).
    pub const API: &str = "x-causeway-api";
    /// On an operation: the `Route` spec (without `apiRef`).
    pub const ROUTE: &str = "x-causeway-route";
    /// On a security scheme: the `Authorizer` spec (without `apiRef`).
    pub const AUTHORIZER: &str = "x-causeway-authorizer";
    /// On a schema: the model as `Api.spec.models` holds it (`contentType`, `schema`).
    pub const MODEL: &str = "x-causeway-model";
}
