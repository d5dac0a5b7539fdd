/**
 * A small SVG bar chart, written by hand (no network, no dependencies): one panel per
 * metric, groups of bars with value labels, a legend. Good enough for BENCHMARKS.md.
 */

export interface Bar {
  label: string;
  value: number;
  color: string;
}

export interface BarGroup {
  label: string;
  bars: Bar[];
}

export interface Panel {
  title: string;
  unit: string;
  groups: BarGroup[];
}

const escapeXml = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function formatValue(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  if (value >= 1000) return Math.round(value).toLocaleString("en-US");
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** Picks a "nice" axis maximum at or above `max`. */
function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  // Each candidate divides into four round ticks.
  for (const step of [1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8, 10]) if (step * power >= max) return step * power;
  return 10 * power;
}

function renderPanel(panel: Panel, x0: number, y0: number, width: number, height: number): string {
  const top = 34;
  const bottom = 40;
  const left = 56;
  const plotHeight = height - top - bottom;
  const plotWidth = width - left - 12;
  const max = niceMax(Math.max(...panel.groups.flatMap((g) => g.bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)))));
  const out: string[] = [];
  out.push(`<g transform="translate(${x0},${y0})">`);
  out.push(`<text x="${left}" y="18" font-size="13" font-weight="bold">${escapeXml(panel.title)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const value = (max * i) / 4;
    const y = top + plotHeight - (plotHeight * i) / 4;
    out.push(`<line x1="${left}" y1="${y}" x2="${left + plotWidth}" y2="${y}" stroke="#ddd" stroke-width="1"/>`);
    out.push(`<text x="${left - 6}" y="${y + 4}" font-size="10" text-anchor="end" fill="#555">${formatValue(value)}</text>`);
  }
  out.push(
    `<text x="14" y="${top + plotHeight / 2}" font-size="10" fill="#555" transform="rotate(-90 14 ${top + plotHeight / 2})" text-anchor="middle">${escapeXml(panel.unit)}</text>`,
  );
  const groupWidth = plotWidth / Math.max(1, panel.groups.length);
  panel.groups.forEach((group, gi) => {
    const barCount = Math.max(1, group.bars.length);
    const barWidth = Math.min(34, (groupWidth - 16) / barCount);
    const start = left + gi * groupWidth + (groupWidth - barWidth * barCount) / 2;
    group.bars.forEach((bar, bi) => {
      const value = Number.isFinite(bar.value) ? bar.value : 0;
      const h = (plotHeight * value) / max;
      const x = start + bi * barWidth;
      const y = top + plotHeight - h;
      out.push(
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(barWidth - 3).toFixed(1)}" height="${h.toFixed(1)}" fill="${bar.color}"><title>${escapeXml(`${group.label} ${bar.label}: ${formatValue(bar.value)} ${panel.unit}`)}</title></rect>`,
      );
      out.push(
        `<text x="${(x + (barWidth - 3) / 2).toFixed(1)}" y="${(y - 3).toFixed(1)}" font-size="9" text-anchor="middle" fill="#333">${formatValue(bar.value)}</text>`,
      );
    });
    out.push(
      `<text x="${(left + gi * groupWidth + groupWidth / 2).toFixed(1)}" y="${top + plotHeight + 16}" font-size="11" text-anchor="middle">${escapeXml(group.label)}</text>`,
    );
  });
  out.push(`<line x1="${left}" y1="${top + plotHeight}" x2="${left + plotWidth}" y2="${top + plotHeight}" stroke="#333"/>`);
  out.push("</g>");
  return out.join("\n");
}

/** Panels side by side with one shared legend (bar label → color, from the first group). */
export function renderChart(options: {
  title: string;
  subtitle?: string;
  panels: Panel[];
  panelWidth?: number;
  panelHeight?: number;
}): string {
  const panelWidth = options.panelWidth ?? 330;
  const panelHeight = options.panelHeight ?? 250;
  const width = panelWidth * options.panels.length + 20;
  const legendItems = new Map<string, string>();
  for (const panel of options.panels)
    for (const group of panel.groups) for (const bar of group.bars) if (!legendItems.has(bar.label)) legendItems.set(bar.label, bar.color);
  const height = 50 + panelHeight + 30;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`,
  );
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<title>${escapeXml(options.title)}</title>`); // what a screen reader announces
  out.push(`<text x="10" y="20" font-size="15" font-weight="bold">${escapeXml(options.title)}</text>`);
  if (options.subtitle) out.push(`<text x="10" y="38" font-size="11" fill="#555">${escapeXml(options.subtitle)}</text>`);
  for (const [i, panel] of options.panels.entries()) out.push(renderPanel(panel, 10 + i * panelWidth, 44, panelWidth, panelHeight));
  let x = 20;
  const y = 44 + panelHeight + 18;
  for (const [label, color] of legendItems) {
    out.push(`<rect x="${x}" y="${y - 9}" width="10" height="10" fill="${color}"/>`);
    out.push(`<text x="${x + 14}" y="${y}" font-size="11">${escapeXml(label)}</text>`);
    x += 24 + label.length * 6.5;
  }
  out.push("</svg>");
  return out.join("\n");
}
