/** `--as <role>` at the head of a hand tool's arguments: the role (or the default) and the rest. */
export function roleArg<R extends string>(args: string[], roles: Record<R, string>, fallback: R): { role: R; rest: string[] } {
  if (args[0] !== '--as') return { role: fallback, rest: args };
  if (!(args[1] in roles)) {
    process.stderr.write(`--as: one of ${Object.keys(roles).join(', ')}, got "${args[1] ?? ''}"\n`);
    process.exit(2);
  }
  return { role: args[1] as R, rest: args.slice(2) };
}

/** Stops with a hint where the stack has not made the credentials yet. */
export function needPassword(password: string | undefined, server: string): string {
  if (!password) {
    process.stderr.write(`no ${server} credentials yet (.stack/secrets.json): run npm run stack:up first\n`);
    process.exit(2);
  }
  return password;
}
