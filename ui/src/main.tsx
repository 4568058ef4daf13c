// Renders the window from the store and starts watching drives. Logic lives in actions.ts.
import { render } from "preact";
import { start, store } from "./actions";
import { App } from "./components/App";
import { useStore } from "./store";

function Root() {
  return <App s={useStore(store)} />;
}

render(<Root />, document.getElementById("app")!);
start();
