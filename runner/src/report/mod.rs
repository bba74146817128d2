//! Rendering results: text, JSON / YAML, self-contained HTML.
