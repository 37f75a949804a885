#!/bin/sh
# Test executable: records its arguments, one per line, then reports a metric.
for arg in "$@"; do printf '%s\n' "$arg"; done > "$RECORD_DIR/$$.args"
echo 0.5
