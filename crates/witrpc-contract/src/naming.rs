//! Naming rules: how Rust names become wire names and generated names.
//!
//! ```
//! use witrpc_contract::naming;
//! assert_eq!(naming::wire_name("echo_bytes"), "EchoBytes");
//! assert_eq!(naming::constant("DemoService"), "DEMO_SERVICE");
//! assert_eq!(naming::namespace_of("WitRpc.Demo.IDemoService"), "WitRpc.Demo");
//! ```

use heck::{ToShoutySnakeCase, ToUpperCamelCase};

/// The default wire name of a method or event: the PascalCase of its Rust name
/// (`echo_bytes` is `EchoBytes`), as .NET names its members.
pub fn wire_name(rust_name: &str) -> String {
    rust_name.to_upper_camel_case()
}

/// What two wire names are compared by: .NET matches member names case-insensitively, so
/// `Add` and `add` collide.
pub fn collision_key(wire_name: &str) -> String {
    wire_name.to_lowercase()
}

/// `SHOUTY_SNAKE_CASE` of a Rust type name, for generated constants (`DemoService` is
/// `DEMO_SERVICE`, giving `DEMO_SERVICE_CONTRACT` in TypeScript).
pub fn constant(name: &str) -> String {
    name.to_shouty_snake_case()
}

/// The namespace part of a namespace-qualified .NET name: everything before the last dot,
/// or `""` when there is none.
pub fn namespace_of(full_name: &str) -> &str {
    full_name.rsplit_once('.').map_or("", |(namespace, _)| namespace)
}

/// `namespace.type_name`, or `type_name` alone when `namespace` is empty.
pub fn qualify(namespace: &str, type_name: &str) -> String {
    if namespace.is_empty() { type_name.to_owned() } else { format!("{namespace}.{type_name}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_pascal_case() {
        assert_eq!(wire_name("add"), "Add");
        assert_eq!(wire_name("get_value_2"), "GetValue2");
        assert_eq!(collision_key("GetValue"), collision_key("getvalue"));
        assert_ne!(collision_key("GetValue"), collision_key("GetValues"));
    }

    #[test]
    fn namespaces_split_at_the_last_dot() {
        assert_eq!(namespace_of("A.B.IC"), "A.B");
        assert_eq!(namespace_of("IC"), "");
        assert_eq!(qualify("", "Point"), "Point");
        assert_eq!(qualify("A.B", "Point"), "A.B.Point");
    }
}
