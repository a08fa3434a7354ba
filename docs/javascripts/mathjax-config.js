// MathJax reads this object when tex-svg.js loads. pymdownx.arithmatex (generic mode)
// wraps each formula in an element of class "arithmatex" with \( \) or \[ \] delimiters;
// only those elements are typeset.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
  svg: { fontCache: "global" },
  startup: {
    pageReady() {
      document.querySelectorAll(".jp-MarkdownOutput").forEach(markNotebookMaths);
      return MathJax.startup.defaultPageReady();
    },
  },
};

// A page rendered from a Jupyter notebook (mkdocs-jupyter) keeps the notebook's $...$ and
// $$...$$ in its markdown cells; wrap each formula as arithmatex would, so that the rule
// above typesets it too.
function markNotebookMaths(cell) {
  const formula = /\$\$([\s\S]+?)\$\$|\$([^$]+?)\$/g;
  const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  const found = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.nodeValue.includes("$") && !node.parentElement.closest("code, pre")) {
      found.push(node);
    }
  }
  for (const node of found) {
    const text = node.nodeValue;
    const parts = document.createDocumentFragment();
    let last = 0;
    for (const match of text.matchAll(formula)) {
      parts.append(text.slice(last, match.index));
      const span = document.createElement("span");
      span.className = "arithmatex";
      span.textContent =
        match[1] !== undefined ? `\\[${match[1]}\\]` : `\\(${match[2]}\\)`;
      parts.append(span);
      last = match.index + match[0].length;
    }
    parts.append(text.slice(last));
    node.replaceWith(parts);
  }
}
