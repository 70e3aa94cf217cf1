import { strict as assert } from 'node:assert';
import { verifierReason } from '../../../../agent/datapath/verifier-log';

/** libbpf's log of ingress.bpf.o on Debian 12's 6.1 (make test-kernel). */
const LINUX_6_1 = `libbpf: prog 'palisade_ingress': BPF program load failed: Invalid argument
libbpf: prog 'palisade_ingress': -- BEGIN PROG LOAD LOG --
0: R1=ctx(off=0,imm=0) R10=fp0
; int palisade_ingress(struct __sk_buff *skb)
0: (bf) r7 = r1                       ; R1=ctx(off=0,imm=0) R7_w=ctx(off=0,imm=0)
; __u64 netns = bpf_get_netns_cookie(skb);
1: (85) call bpf_get_netns_cookie#122
unknown func bpf_get_netns_cookie#122
processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
-- END PROG LOAD LOG --
libbpf: prog 'palisade_ingress': failed to load: -22
libbpf: failed to load object '/work/bpf/ingress.bpf.o'
`;

describe('verifierReason', () => {
  const cases: Array<{ what: string; log: string | undefined; want: string | undefined }> = [
    { what: 'an unknown helper on 6.1', log: LINUX_6_1, want: 'palisade_ingress: unknown func bpf_get_netns_cookie#122' },
    {
      what: 'a bounds error, with the statistics after it',
      log: [
        "libbpf: prog 'p': -- BEGIN PROG LOAD LOG --",
        '5: (61) r0 = *(u32 *)(r2 +0)',
        "invalid access to packet, off=0 size=4, R2(id=0,off=0,r=0)",
        'processed 6 insns (limit 1000000)',
        'verification time 12 usec',
        'stack depth 0',
        '-- END PROG LOAD LOG --',
        "libbpf: prog 'p': failed to load: -13",
      ].join('\n'),
      want: 'p: invalid access to packet, off=0 size=4, R2(id=0,off=0,r=0)',
    },
    { what: 'no program log (failed before the verifier)', log: "libbpf: map 'x': failed to create: -1\n", want: undefined },
    { what: 'an empty program log', log: "libbpf: prog 'p': -- BEGIN PROG LOAD LOG --\n-- END PROG LOAD LOG --\n", want: undefined },
    { what: 'no log at all', log: undefined, want: undefined },
  ];
  for (const c of cases) {
    it(c.what, () => assert.equal(verifierReason(c.log), c.want));
  }
});
