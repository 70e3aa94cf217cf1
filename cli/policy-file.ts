/** The policy files a command is given (`-f FILE`), read for `policy validate|apply|test`. */
import * as fs from 'node:fs';
import { describeCause, errorCode, PalisadeError } from '../common/errors';
import type { PolicyFile } from '../common/policy-files';

/** FILE's text, named by its path; a file that cannot be read is one line (INVALID_ARGUMENT). */
export function readPolicyFile(file: string): PolicyFile {
  try {
    return { source: file, text: fs.readFileSync(file, 'utf8') };
  } catch (err) {
    throw new PalisadeError('PALISADE_ERR_INVALID_ARGUMENT', `cannot read policy file ${file}: ${errorCode(err) ?? describeCause(err)}`, { cause: err });
  }
}
