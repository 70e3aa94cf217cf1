/** The error a rejected policy file (or set of files) throws. */
import { PalisadeError } from '../errors';

/** Policies that failed validation; `problems` lists every problem, one line `<source>:<line>: <what> (<hint>)` each. */
export class PolicyInvalidError extends PalisadeError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    const more = problems.length - 1;
    const suffix = more > 0 ? ` (and ${more} more problem${more === 1 ? '' : 's'})` : '';
    super('PALISADE_ERR_POLICY_INVALID', `${problems[0] ?? 'invalid policy'}${suffix}`);
    this.problems = [...problems];
  }
}
