// Parse a Mermaid gantt chart with the real mermaid package and print its compiled tasks as JSON lines.
// Used by tests/test_summary_timeline.py when WORKTREE_RUNNER_MERMAID_DIR names a folder with
// node_modules/mermaid and node_modules/jsdom (npm install mermaid@11 jsdom@24).
// Usage: node tests/mermaid_check.mjs CHART_FILE   (run with NODE_PATH unset; imports resolve from cwd)
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const base = process.env.WORKTREE_RUNNER_MERMAID_DIR;
const require = createRequire(path.join(base, 'package.json'));
const { JSDOM } = require('jsdom');
const dom = new JSDOM('<!doctype html><html><body></body></html>', { pretendToBeVisual: true });
globalThis.window = dom.window;
globalThis.document = dom.window.document;
globalThis.DOMParser = dom.window.DOMParser;
const mermaidPath = require.resolve('mermaid');
const mermaid = (await import(pathToFileURL(mermaidPath).href)).default;
mermaid.initialize({ startOnLoad: false, securityLevel: 'strict' });
const text = fs.readFileSync(process.argv[2], 'utf8');
try {
  const parsed = await mermaid.parse(text);
  const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
  console.log(JSON.stringify({ type: parsed.diagramType, sections: diagram.db.getSections() }));
  for (const t of diagram.db.getTasks()) {
    console.log(JSON.stringify({ task: t.task, start: t.startTime, end: t.endTime, done: !!t.done,
                                 crit: !!t.crit, active: !!t.active, section: t.section }));
  }
} catch (error) {
  console.log(JSON.stringify({ error: String(error && error.message ? error.message : error) }));
  process.exit(1);
}
