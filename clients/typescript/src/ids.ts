// FNV-1a-64 over UTF-16 code units: WitRPC's ContractId and MethodId. Also the .NET
// type names a request carries in ParameterTypesByName.

const OFFSET = 0xcbf29ce484222325n;
const PRIME = 0x100000001b3n;
const MASK = 0xffffffffffffffffn;

/** Simple name of the assembly that holds the .NET base types. */
export const CORE_LIB = "System.Private.CoreLib";

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

/**
 * MethodId. Either the whole signature `Contract#Method(T1,T2)`, or the contract, the
 * method and the parameters' .NET stable names (`System.Int32`,
 * `System.Collections.Generic.List<System.Int32>`, `System.Byte[]`); an
 * `, AssemblyName` suffix on a type is ignored.
 */
export function methodId(signature: string): bigint;
export function methodId(contract: string, method: string, parameterTypes: readonly string[]): bigint;
export function methodId(contract: string, method?: string, parameterTypes?: readonly string[]): bigint {
  if (method === undefined) return fnv1a64Utf16(contract);
  const types = (parameterTypes ?? []).map((t) => splitAssembly(t).type);
  return fnv1a64Utf16(`${contract}#${method}(${types.join(",")})`);
}

/** Splits `"My.Type, MyAssembly"` at the top-level comma; without one the assembly is undefined. */
export function splitAssembly(name: string): { type: string; assembly?: string } {
  let depth = 0;
  for (let i = 0; i < name.length; i++) {
    const c = name[i];
    if (c === "<" || c === "[") depth++;
    else if (c === ">" || c === "]") depth--;
    else if (c === "," && depth === 0) return { type: name.slice(0, i).trim(), assembly: name.slice(i + 1).trim() };
  }
  return { type: name.trim() };
}

/** Splits the generic arguments of `A,B<C,D>,E` at top-level commas. */
function splitArguments(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "<") depth++;
    else if (c === ">") depth--;
    else if (c === "," && depth === 0) {
      out.push(s.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(s.slice(start).trim());
  return out;
}

function defaultAssembly(stable: string, fallback: string | undefined): string {
  return stable.startsWith("System.") ? CORE_LIB : (fallback ?? "");
}

/**
 * `Type.FullName` for a stable name: `System.Collections.Generic.List<System.Int32>`
 * becomes ``System.Collections.Generic.List`1[[System.Int32, System.Private.CoreLib]]``.
 * Generic arguments outside `System.*` take `assembly`.
 */
export function clrFullName(stable: string, assembly?: string): string {
  if (stable.endsWith("[]")) return `${clrFullName(stable.slice(0, -2), assembly)}[]`;
  const open = stable.indexOf("<");
  if (open < 0 || !stable.endsWith(">")) return stable;
  const args = splitArguments(stable.slice(open + 1, -1));
  const inner = args.map((a) => `[${clrFullName(a, assembly)}, ${defaultAssembly(a, assembly)}]`).join(",");
  return `${stable.slice(0, open)}\`${args.length}[${inner}]`;
}

/**
 * The `ParameterType {Type, Assembly}` a request carries for a parameter given as a
 * stable name, optionally with `, AssemblyName` (default: `System.Private.CoreLib` for
 * `System.*` types).
 */
export function parameterTypeByName(name: string): { type: string; assembly: string } {
  const { type, assembly } = splitAssembly(name);
  return { type: clrFullName(type, assembly), assembly: assembly ?? defaultAssembly(type, undefined) };
}
