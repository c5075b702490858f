//! The `continue` token of paginated LISTs.
