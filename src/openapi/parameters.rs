//! Parameters are strings on the wire: a header, query or path value is
//! never JSON `null` (a missing one is `required: false`). utoipa types an
//! `Option<T>` parameter `[T, "null"]`, which Swagger UI renders as
//! "stringnull"; this states the plain type instead.

use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::{OpenApi, RefOr};

pub fn drop_null_types(doc: &mut OpenApi) {
    let parameters = super::operations_mut(doc)
        .filter_map(|op| op.parameters.as_mut())
        .flatten();
    for parameter in parameters {
        if let Some(RefOr::T(Schema::Object(object))) = &mut parameter.schema {
            object.schema_type = without_null(&object.schema_type);
        }
    }
}

fn without_null(types: &SchemaType) -> SchemaType {
    match types {
        SchemaType::Array(types) => {
            let mut rest: Vec<Type> = types
                .iter()
                .filter(|t| **t != Type::Null)
                .cloned()
                .collect();
            match rest.len() {
                1 => SchemaType::Type(rest.remove(0)),
                _ => SchemaType::Array(rest),
            }
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The type as the document writes it.
    fn json(types: SchemaType) -> serde_json::Value {
        serde_json::to_value(without_null(&types)).unwrap()
    }

    #[test]
    fn a_nullable_type_loses_its_null_and_others_stay() {
        let nullable = SchemaType::Array(vec![Type::String, Type::Null]);
        assert_eq!(json(nullable), "string");
        assert_eq!(json(SchemaType::Type(Type::Integer)), "integer");
        let two = SchemaType::Array(vec![Type::String, Type::Integer, Type::Null]);
        assert_eq!(json(two), serde_json::json!(["string", "integer"]));
    }
}
