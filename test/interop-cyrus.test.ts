// mailbell against a real cyrus; the steps and the table of servers are in support/interop.ts.
import { interopSuite } from "./support/interop.ts";

interopSuite("cyrus");
