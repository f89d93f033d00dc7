// A loopback OpenID Provider (panva's oidc-provider) for Kaitiaki's interop tests.
// Usage: node provider.mjs config.json. The tests write the config and stop the
// process by its id. Client credentials with private_key_jwt, JWT or opaque access
// tokens through resource indicators, introspection, revocation and DPoP.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: { keys: config.jwks },
  clientAuthMethods: ['private_key_jwt'],
  enabledJWA: { clientAuthSigningAlgValues: ['ES256'], dPoPSigningAlgValues: ['ES256'] },
  scopes: config.scopes,
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    dPoP: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator, client) => {
        if (indicator !== config.resource) throw new Error('unknown resource');
        return {
          scope: config.scopes.join(' '),
          audience: config.resource,
          accessTokenTTL: 300,
          accessTokenFormat: config.opaqueClients.includes(client.clientId) ? 'opaque' : 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
});
provider.proxy = false;

const server = provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`listening ${config.port}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
