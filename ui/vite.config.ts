import { defineConfig } from "vite";

// Everything is bundled into ui/dist and served by the app itself: no CDN, no remote fonts.
export default defineConfig({
  base: "./",
  build: { outDir: "dist", emptyOutDir: true, target: "es2022" },
});
