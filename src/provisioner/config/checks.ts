/**
 * String checks shared by the config schema: every string a config can carry is one of these kinds, so a
 * value meant as a name, path or URI can never carry markup, shell syntax, `..` or a MongoDB operator.
 */

/** VM_NAME_RE: a VM (libvirt domain) name, as xmlgen accepts it: `[A-Za-z0-9_.-]`, not starting with . or -. */
export const VM_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/** IDENT_RE: names of hosts and profiles (the same alphabet as VM names). */
export const IDENT_RE = VM_NAME_RE;

/** DEV_RE: a Linux bridge or network device name (IFNAMSIZ: at most 15 bytes). */
export const DEV_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;

/** NETWORK_RE: a libvirt network name. */
export const NETWORK_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/**
 * PATH_CHAR_RE: the characters a configured path may use. Narrower than Unix allows on purpose: no
 * whitespace, quotes, `<>&`, `$`, backquote, `;`, `|`, `\`, `*`, `?` (paths reach virsh and XML).
 */
const PATH_CHAR_RE = /^[A-Za-z0-9_./+@%,:=~-]+$/;

/** PLACEHOLDER_RE finds `{name}`-style placeholders in templates. */
export const PLACEHOLDER_RE = /\{([A-Za-z0-9]+)\}/g;

/** MAX_PATH_LEN bounds configured paths (Linux PATH_MAX 4096 including NUL). */
export const MAX_PATH_LEN = 4095;

/**
 * pathProblem says why `s` is not an acceptable absolute host path, or undefined when it is.
 * `placeholders` allows `{name}`-style placeholders (substituted per VM, then checked again).
 */
export function pathProblem(s: string, placeholders = false): string | undefined {
  if (!s.startsWith("/")) return "must be an absolute path (start with /)";
  if (s.length > MAX_PATH_LEN) return `must be at most ${MAX_PATH_LEN} characters`;
  if (s.split("/").includes("..")) return "must not contain a .. component";
  const bare = placeholders ? s.replace(PLACEHOLDER_RE, "x") : s;
  if (!PATH_CHAR_RE.test(bare)) {
    return "may contain only A-Z a-z 0-9 and _ . / + @ % , : = ~ - (no spaces, quotes, <, >, &, $, ;, |, \\ or control characters)";
  }
  if (placeholders && /[{}]/.test(bare)) return "has an unbalanced { or } (placeholders look like {name})";
  return undefined;
}

/**
 * TEXT_FORBIDDEN_RE: characters refused in free text that ends up on a kernel command line or an init
 * argument: control characters (incl. NUL and newlines), XML's `<>&`, and shell's `` ` ``, `$`, `;`, `|`,
 * `\`, `'`. Double quotes stay allowed (the kernel's own quoting: `foo="a b"`).
 */
// eslint-disable-next-line no-control-regex
const TEXT_FORBIDDEN_RE = /[\u0000-\u001f\u007f<>&`$;|\\']/;

/** MAX_CMDLINE_LEN: x86's COMMAND_LINE_SIZE (2048) minus the NUL. */
export const MAX_CMDLINE_LEN = 2047;

/** textProblem says why `s` is not acceptable kernel-cmdline-like text, or undefined when it is. */
export function textProblem(s: string, max = MAX_CMDLINE_LEN): string | undefined {
  if (s.length > max) return `must be at most ${max} characters`;
  const m = TEXT_FORBIDDEN_RE.exec(s);
  if (m) {
    return `must not contain ${JSON.stringify(m[0])} (control characters, < > & and shell metacharacters \` $ ; | \\ ' are refused)`;
  }
  return undefined;
}

/** HOSTNAME_RE: a DNS name (RFC 1123 labels) or an IPv4 address. */
const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** IPV6_RE: an IPv6 literal (loose: hex groups and colons, optional zone-free IPv4 tail). */
const IPV6_RE = /^[0-9A-Fa-f:]{2,39}(?:\.\d{1,3}){0,3}$/;

/** hostProblem says why `s` is not a host name or IP address, or undefined when it is. */
export function hostProblem(s: string): string | undefined {
  if (HOSTNAME_RE.test(s)) return undefined;
  if (s.includes(":") && IPV6_RE.test(s)) return undefined;
  return "must be a host name or an IP address (like 127.0.0.1, ::1 or ctl.example.org)";
}

/** URI_FORBIDDEN_RE: characters no configured URI may contain (whitespace, controls, quotes, markup, shell). */
// eslint-disable-next-line no-control-regex
const URI_FORBIDDEN_RE = /[\s\u0000-\u001f\u007f"'<>`\\|;${}]/;

/**
 * libvirtUriProblem checks a libvirt connection URI (`qemu:///system`, `qemu+ssh://user@host/system`,
 * `test:///default`, `lxc:///system`). Returns undefined when acceptable.
 */
export function libvirtUriProblem(s: string): string | undefined {
  if (s.length > 1024) return "must be at most 1024 characters";
  if (URI_FORBIDDEN_RE.test(s))
    return "must not contain whitespace, quotes, < > ` \\ | ; $ { } or control characters";
  if (s.includes("..")) return "must not contain .. (a URI path or socket path must not climb directories)";
  if (!/^[a-z][a-z0-9]*(\+[a-z0-9]+)?:\/\/[^/]*\/[^\s]*$/.test(s)) {
    return "must be a libvirt URI like qemu:///system, qemu+ssh://host/system or test:///default";
  }
  return undefined;
}

/** mongoUriProblem checks a MongoDB connection string (`mongodb://` or `mongodb+srv://`). */
export function mongoUriProblem(s: string): string | undefined {
  if (s.length > 4096) return "must be at most 4096 characters";
  if (URI_FORBIDDEN_RE.test(s.replace(/\$/g, "x"))) {
    return "must not contain whitespace, quotes, < > ` \\ | ; { } or control characters";
  }
  if (!/^mongodb(\+srv)?:\/\/[^/?#]+(\/[^?#]*)?(\?[^#]*)?$/.test(s)) {
    return "must be a MongoDB URI like mongodb://127.0.0.1:27017";
  }
  return undefined;
}

/**
 * MONGO_DB_NAME_RE: a database name MongoDB accepts on every platform (no `/\. "$*<>:|?`, at most 63
 * bytes); narrowed to a safe alphabet.
 */
export const MONGO_DB_NAME_RE = /^[A-Za-z0-9_-]{1,63}$/;

/** COLLECTION_PREFIX_RE: rfboot's collection name prefix (no `$`, no `system.`). */
export const COLLECTION_PREFIX_RE = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;

/** regexProblem checks that `s` compiles as a JavaScript regular expression of sane size. */
export function regexProblem(s: string): string | undefined {
  if (s.length === 0) return "must not be empty (use null to disable)";
  if (s.length > 512) return "must be at most 512 characters";
  try {
    new RegExp(s);
  } catch (err) {
    return `is not a valid regular expression: ${(err as Error).message}`;
  }
  // The marker runs over what a guest prints: a quantified group that itself repeats, such as (a+)+ or
  // (\w*)*, can backtrack exponentially on crafted console output and stall the daemon.
  if (NESTED_QUANTIFIER.test(s)) {
    return "repeats a group that itself contains a repetition (like (a+)+): rewrite it without nested quantifiers";
  }
  return undefined;
}

/** NESTED_QUANTIFIER finds a group with a quantifier inside that is quantified again: `(...+...)+`, `(...*)*{2,}`. */
const NESTED_QUANTIFIER = /\((?:[^()\\]|\\.)*(?:[+*]|\{\d+,\d*\})(?:[^()\\]|\\.)*\)(?:[+*]|\{\d+,)/;
