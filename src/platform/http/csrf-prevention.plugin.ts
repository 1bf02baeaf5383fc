import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { requestRefusal } from '../graphql/errors.ts';

/** Any header a page cannot send without a CORS preflight would do; this is the one yoga's docs name. */
export const CSRF_HEADER = 'x-graphql-yoga-csrf';

/**
 * Refuses requests that any web page can make without a CORS preflight (an HTML form posting
 * `application/x-www-form-urlencoded`, `multipart/form-data` or `text/plain`, or a plain GET) unless
 * they carry CSRF_HEADER. JSON POSTs, which GraphiQL and every GraphQL client send, force a preflight
 * and pass. The refusal is a 403 with `extensions.code` BAD_REQUEST, before anything is parsed or run.
 */
export function useCsrfPrevention(): Plugin {
  const plugin = useCSRFPrevention({ requestHeaders: [CSRF_HEADER] });
  return {
    onRequestParse(payload) {
      try {
        return plugin.onRequestParse?.(payload);
      } catch (error) {
        if (!(error instanceof GraphQLError)) throw error;
        throw requestRefusal(
          'BAD_REQUEST',
          `This request could come from any web page: send it as JSON (content-type: application/json) or add the ${CSRF_HEADER} header`,
          { status: 403 },
        );
      }
    },
  };
}
