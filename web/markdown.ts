/**
 * The generated post as DOM nodes, never as HTML: model output is untrusted, so every piece
 * of it becomes a text node inside a fixed set of elements (h2-h4, p, ul/ol/li, strong, em,
 * a.cite). No innerHTML, no attribute ever takes model text except a citation's fixed
 * `#source-N` link, so a line such as `<script>` or `<img onerror>` shows as text.
 */

/** Appends `text` with **bold**, *em* and `[n]` citations (n within 1..sourceCount) to `parent`. */
export function appendInline(parent: HTMLElement, text: string, sourceCount: number): void {
  let i = 0;
  let plain = "";
  const flush = () => {
    if (plain) parent.appendChild(document.createTextNode(plain));
    plain = "";
  };
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === "[") {
      let j = i + 1;
      while (j < text.length && j - i <= 4 && text[j]! >= "0" && text[j]! <= "9") j++;
      const n = Number(text.slice(i + 1, j));
      if (j > i + 1 && text[j] === "]" && n >= 1 && n <= sourceCount) {
        flush();
        const a = document.createElement("a");
        a.className = "cite";
        a.href = `#source-${n}`;
        a.textContent = `[${n}]`;
        a.setAttribute("aria-label", `source ${n}`);
        parent.appendChild(a);
        i = j + 1;
        continue;
      }
    }
    if (ch === "*") {
      const bold = text.startsWith("**", i);
      const marker = bold ? "**" : "*";
      const end = text.indexOf(marker, i + marker.length);
      if (end > i + marker.length) {
        flush();
        const el = document.createElement(bold ? "strong" : "em");
        appendInline(el, text.slice(i + marker.length, end), sourceCount);
        parent.appendChild(el);
        i = end + marker.length;
        continue;
      }
    }
    plain += ch;
    i++;
  }
  flush();
}

function headingLevel(line: string): number {
  let n = 0;
  while (n < line.length && line[n] === "#") n++;
  return n >= 1 && n <= 6 && line[n] === " " ? n : 0;
}

function listItem(line: string): { ordered: boolean; text: string } | null {
  const t = line.trimStart();
  if ((t.startsWith("- ") || t.startsWith("* ") || t.startsWith("+ ")) && t.length > 2) return { ordered: false, text: t.slice(2) };
  let d = 0;
  while (d < t.length && d < 4 && t[d]! >= "0" && t[d]! <= "9") d++;
  if (d > 0 && (t[d] === "." || t[d] === ")") && t[d + 1] === " ") return { ordered: true, text: t.slice(d + 2) };
  return null;
}

/** Renders `markdown` into `target` (replacing its children). */
export function renderMarkdown(target: HTMLElement, markdown: string, sourceCount: number): void {
  const fragment = document.createDocumentFragment();
  let paragraph: string[] = [];
  let list: HTMLElement | null = null;
  const endParagraph = () => {
    if (paragraph.length > 0) {
      const p = document.createElement("p");
      appendInline(p, paragraph.join(" "), sourceCount);
      fragment.appendChild(p);
    }
    paragraph = [];
  };
  for (const raw of markdown.split("\n")) {
    const line = raw.trimEnd();
    if (line.trim() === "") {
      endParagraph();
      list = null;
      continue;
    }
    const level = headingLevel(line);
    if (level > 0) {
      endParagraph();
      list = null;
      // The page's own h1/h2 come first: the post's headings start at h2 and stop at h4.
      const h = document.createElement(`h${Math.min(4, level + 1)}`);
      appendInline(h, line.slice(level + 1).trim(), sourceCount);
      fragment.appendChild(h);
      continue;
    }
    const item = listItem(line);
    if (item) {
      endParagraph();
      const tag = item.ordered ? "OL" : "UL";
      if (!list || list.tagName !== tag) {
        list = document.createElement(tag.toLowerCase());
        fragment.appendChild(list);
      }
      const li = document.createElement("li");
      appendInline(li, item.text, sourceCount);
      list.appendChild(li);
      continue;
    }
    list = null;
    paragraph.push(line.trim());
  }
  endParagraph();
  target.replaceChildren(fragment);
}
