// mailbell against a real dovecot; the steps and the table of servers are in support/interop.ts.
import { interopSuite } from "./support/interop.ts";

interopSuite("dovecot");
