import path from 'node:path';
import type { NextConfig } from 'next';

const config: NextConfig = {
  reactStrictMode: true,
  poweredByHeader: false,
  // the monorepo's one node_modules and lockfile are at the root
  turbopack: { root: path.resolve(__dirname, '../..') },
  outputFileTracingRoot: path.resolve(__dirname, '../..'),
  experimental: {
    optimizePackageImports: ['@mantine/core', '@mantine/hooks'],
    // CI builds from scratch and turbo does not keep .next/cache: writing it only costs time
    turbopackFileSystemCacheForBuild: false,
  },
};

export default config;
