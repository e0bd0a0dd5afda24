//! Contract and method ids: 64-bit FNV-1a over UTF-16 code units, as .NET computes them.

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a-64 over the UTF-16 code units of `s`, reinterpreted as `i64`.
///
/// Each whole 16-bit unit is XORed in per step, so this equals byte-wise FNV-1a only
/// for ASCII text.
///
/// ```
/// assert_eq!(witrpc_core::ids::fnv1a64_utf16("a") as u64, 0xaf63dc4c8601ec8c);
/// ```
pub fn fnv1a64_utf16(s: &str) -> i64 {
    let mut h = OFFSET_BASIS;
    for unit in s.encode_utf16() {
        h ^= u64::from(unit);
        h = h.wrapping_mul(PRIME);
    }
    h as i64
}

/// `ContractId` of an interface given by its namespace-qualified name.
///
/// ```
/// assert_eq!(witrpc_core::ids::contract_id("MyCompany.Contracts.ICalculator"), 2863546532410206118);
/// ```
pub fn contract_id(contract: &str) -> i64 {
    fnv1a64_utf16(contract)
}

/// The string a `MethodId` hashes: `Contract#Method(T1,T2)`.
pub fn method_signature<S: AsRef<str>>(contract: &str, method: &str, parameter_types: &[S]) -> String {
    let mut s = String::with_capacity(contract.len() + method.len() + 2 + parameter_types.len() * 16);
    s.push_str(contract);
    s.push('#');
    s.push_str(method);
    s.push('(');
    for (i, t) in parameter_types.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(t.as_ref());
    }
    s.push(')');
    s
}

/// `MethodId` of `method` with the given .NET stable parameter type names.
///
/// ```
/// let id = witrpc_core::ids::method_id("MyCompany.Contracts.ICalculator", "Add", &["System.Int32", "System.Int32"]);
/// assert_eq!(id, -6724387377990606637);
/// ```
pub fn method_id<S: AsRef<str>>(contract: &str, method: &str, parameter_types: &[S]) -> i64 {
    fnv1a64_utf16(&method_signature(contract, method, parameter_types))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_from_the_protocol_notes() {
        assert_eq!(fnv1a64_utf16("a") as u64, 0xaf63_dc4c_8601_ec8c);
        let c = "MyCompany.Contracts.ICalculator";
        assert_eq!(contract_id(c), 2_863_546_532_410_206_118);
        assert_eq!(contract_id(c) as u64, 0x27bd_5c66_461c_a7a6);
        assert_eq!(method_id(c, "Add", &["System.Int32", "System.Int32"]), -6_724_387_377_990_606_637);
        assert_eq!(method_id::<&str>(c, "Ping", &[]), -3_928_012_737_138_291_320);
        assert_eq!(
            method_id(c, "Sum", &["System.Collections.Generic.List<System.Int32>", "System.Byte[]"]),
            7_784_146_604_138_033_026
        );
    }

    #[test]
    fn non_ascii_hashes_whole_utf16_units() {
        // 'é' is one UTF-16 unit (0x00E9) but two UTF-8 bytes: the hashes must differ.
        let mut bytewise = OFFSET_BASIS;
        for b in "é".bytes() {
            bytewise ^= u64::from(b);
            bytewise = bytewise.wrapping_mul(PRIME);
        }
        assert_ne!(fnv1a64_utf16("é") as u64, bytewise);
        let expected = (OFFSET_BASIS ^ 0xE9).wrapping_mul(PRIME);
        assert_eq!(fnv1a64_utf16("é") as u64, expected);
    }
}
