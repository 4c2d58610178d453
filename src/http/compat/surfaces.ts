import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services.js';
import { registerSurface } from './compat.js';
import { elasticpay } from './elasticpay/elasticpay.routes.js';
import { gatelithix } from './gatelithix/gatelithix.routes.js';
import { generic } from './generic/generic.routes.js';
import { primer } from './primer/primer.routes.js';
import { shiftxpay } from './shiftxpay/shiftxpay.routes.js';

/** Every compatibility surface, each under `/compat/<name>/` (docs/compat.md). */
export async function compatRoutes(app: FastifyInstance, services: Services): Promise<void> {
  for (const surface of [gatelithix, shiftxpay, generic, primer, elasticpay]) await registerSurface(app, services, surface);
}
