/**
 * The verifier's reason in libbpf's log of a failed load, for one-line errors: the last line of a
 * program's load log before the verifier's statistics, with the program's name, e.g.
 * `palisade_ingress: unknown func bpf_get_netns_cookie#122`.
 */
const END = '-- END PROG LOAD LOG --';
const BEGIN = /prog '([^']+)': -- BEGIN PROG LOAD LOG --/;
/** Lines the verifier prints after its verdict. */
const STATISTICS = /^(processed \d+ insns|verification time|stack depth|mark_read)/;

export function verifierReason(log: string | undefined): string | undefined {
  if (!log) return undefined;
  const lines = log.split('\n').map((l) => l.trim());
  const end = lines.lastIndexOf(END);
  if (end < 0) return undefined;
  let begin = end - 1;
  while (begin >= 0 && !BEGIN.test(lines[begin]!)) begin--;
  for (let i = end - 1; i > begin; i--) {
    const line = lines[i]!;
    if (line && !STATISTICS.test(line)) {
      const prog = begin >= 0 ? BEGIN.exec(lines[begin]!)?.[1] : undefined;
      return prog ? `${prog}: ${line}` : line;
    }
  }
  return undefined;
}
