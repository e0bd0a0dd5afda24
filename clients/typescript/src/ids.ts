// FNV-1a-64 over UTF-16 code units: WitRPC's ContractId and MethodId.

const OFFSET = 0xcbf29ce484222325n;
const PRIME = 0x100000001b3n;
const MASK = 0xffffffffffffffffn;

/** FNV-1a-64 over the UTF-16 units of `s` (each whole unit XORed in per step), as a signed 64-bit value. */
export function fnv1a64Utf16(s: string): bigint {
  let hash = OFFSET;
  for (let i = 0; i < s.length; i++) {
    hash = ((hash ^ BigInt(s.charCodeAt(i))) * PRIME) & MASK;
  }
  return BigInt.asIntN(64, hash);
}

/** ContractId of an interface's full name, e.g. `WitRpc.Demo.IDemoService`. */
export function contractId(contract: string): bigint {
  return fnv1a64Utf16(contract);
}

/** MethodId of `Contract#Method(T1,T2)` with .NET full type names. */
export function methodId(contract: string, method: string, parameterTypes: readonly string[]): bigint {
  return fnv1a64Utf16(`${contract}#${method}(${parameterTypes.join(",")})`);
}
