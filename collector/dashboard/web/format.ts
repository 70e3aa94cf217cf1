/** Numbers as the map prints them: short, with units. */
export function rate(n: number): string {
  if (n === 0) return '0';
  if (n < 0.01) return '<0.01';
  if (n < 10) return n.toFixed(2);
  if (n < 1000) return n.toFixed(1);
  return `${(n / 1000).toFixed(1)}k`;
}

export function bytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export const percent = (x: number): string => (x === 0 ? '0%' : x < 0.001 ? '<0.1%' : `${(x * 100).toFixed(1)}%`);

export const time = (ms: number): string => new Date(ms).toLocaleTimeString([], { hour12: false });

export const count = (n: number): string => n.toLocaleString('en-US');
