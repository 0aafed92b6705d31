#!/usr/bin/env bash
# Re-vendors the dashboard's plotting library: installs exactly what
# package-lock.json pins (npm ci) and copies uPlot's built, minified files
# into vendor/, which the coordinator embeds at build time. Run after
# changing the version in package.json (then `npm install` updates the lock
# file); the build itself needs no npm and no network.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --ignore-scripts --no-audit --no-fund
cp node_modules/uplot/dist/uPlot.iife.min.js vendor/uPlot.iife.min.js
cp node_modules/uplot/dist/uPlot.min.css vendor/uPlot.min.css
cp node_modules/uplot/LICENSE vendor/uPlot.LICENSE
rm -rf node_modules
echo "vendored uPlot $(node -p 'require("./package-lock.json").packages["node_modules/uplot"].version')"
