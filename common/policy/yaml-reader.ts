/**
 * The policy files' `NodeReader`: the generic reader of ../yaml-reader, but an empty string in a
 * list of match values is likely meant as "any value", which policies write "*".
 */
import { NodeReader as YamlNodeReader } from '../yaml-reader';

export class NodeReader extends YamlNodeReader {
  protected override readonly emptyStringFix = 'remove it, or use "*" to require any value';
}
