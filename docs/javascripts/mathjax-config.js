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
};
