/// Errors of the Azure adapter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cloud configuration is not a JSON object.
    #[error("cloud configuration is not valid JSON")]
    ConfigJson(#[source] serde_json::Error),
    /// A field of the cloud configuration has the wrong type.
    #[error("cloud configuration field {field} must be {expected}")]
    ConfigType {
        /// The field, as spelled in the file.
        field: String,
        /// The expected JSON type.
        expected: &'static str,
    },
    /// A required field is missing or empty.
    #[error("cloud configuration field {0} is required")]
    ConfigRequired(&'static str),
    /// Fields that contradict each other.
    #[error("cloud configuration: {0}")]
    ConfigConflict(&'static str),
}
