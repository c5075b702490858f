//! The shape of the generated message table ([`super::descriptors`]): for each protobuf
//! message of a built-in type, its fields with their tags, JSON names and wire kinds.

/// One protobuf message (a Go struct of the Kubernetes API).
#[derive(Debug)]
pub struct Message {
    /// Its k8s-pb module path and name (`api.core.v1.Pod`), for messages and tests.
    pub name: &'static str,
    /// Set when the message's JSON form is not an object of its fields.
    pub special: Special,
    /// By tag.
    pub fields: &'static [Field],
}

/// One field of a message.
#[derive(Debug)]
pub struct Field {
    pub tag: u32,
    /// Its JSON property name (empty for [`Label::Inline`]).
    pub json: &'static str,
    pub ty: Type,
    pub label: Label,
}

/// The value type of a field (of a map's values for [`Label::Map`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    String,
    /// base64 in JSON.
    Bytes,
    Bool,
    Int32,
    Int64,
    Double,
    /// Index into [`super::descriptors::MESSAGES`].
    Message(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// proto2 `optional`: present or not.
    Optional,
    /// An optional scalar that is required in the API (a Go field without `omitempty`):
    /// decoded even when it holds the zero value.
    Required,
    /// An integer or boolean that is a plain `omitempty` field in Go (not a pointer): a Go
    /// client always sends it, Go's JSON omits it when zero, so a zero decodes as absent.
    OmitZero,
    /// A JSON array; scalars unpacked on the wire (proto2), packed accepted.
    Repeated,
    /// `map<string, T>`: a JSON object; on the wire entries `{1: key, 2: value}`.
    Map,
    /// A Go struct embedded with `json:",inline"`: a nested message on the wire, its fields
    /// directly in the parent's JSON object.
    Inline,
}

/// Messages with their own JSON form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    None,
    /// meta/v1 Time: RFC 3339 in seconds ↔ `{seconds, nanos}`.
    Time,
    /// meta/v1 MicroTime: RFC 3339 in microseconds ↔ `{seconds, nanos}`.
    MicroTime,
    /// meta/v1 Duration: a Go duration string (`1h2m3s`) ↔ `{duration}` in nanoseconds.
    Duration,
    /// Embedded JSON ↔ `{raw}` bytes (runtime.RawExtension, meta/v1 FieldsV1,
    /// apiextensions JSON).
    RawJson,
    /// resource.Quantity: a string ↔ `{string}`.
    Quantity,
    /// intstr.IntOrString: a number or a string ↔ `{type, intVal, strVal}`.
    IntOrString,
    /// JSONSchemaPropsOrArray: a schema or an array of schemas.
    SchemaOrArray,
    /// JSONSchemaPropsOrBool: a schema or a bool.
    SchemaOrBool,
    /// JSONSchemaPropsOrStringArray: a schema or an array of strings.
    SchemaOrStringArray,
    /// A Go `[]string` type (authentication/authorization ExtraValue): an array of strings
    /// ↔ `{items}`.
    StringList,
}
