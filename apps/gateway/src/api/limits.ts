// Limits every GraphQL document meets before it runs, on HTTP (Apollo) and on graphql-ws alike
// (Apollo's plugins never see the WebSocket path): size in tokens, depth, aliases, directives and
// cost (graphql-armor's rules), and introspection only where it is allowed. A document over a
// limit is refused with BAD_USER_INPUT and a message naming the limit.
import { GraphQLError, NoSchemaIntrospectionCustomRule, parse, specifiedRules, validate, type DocumentNode, type GraphQLSchema, type ValidationContext, type ValidationRule } from 'graphql';
import { costLimitRule } from '@escape.tech/graphql-armor-cost-limit';
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesRule } from '@escape.tech/graphql-armor-max-directives';

export interface GraphqlLimits {
  maxTokens: number;
  maxDepth: number;
  maxAliases: number;
  maxDirectives: number;
  maxCost: number;
  /** schema introspection and "did you mean" suggestions (off in production) */
  introspection: boolean;
}

// armor throws by default, which graphql-js turns into a crash of validation (an internal error):
// reported as validation errors instead, they come back as BAD_USER_INPUT
const asValidationError = { propagateOnRejection: false, onReject: [(ctx: ValidationContext | null, e: GraphQLError) => ctx?.reportError(e)] };

export function limitRules(l: GraphqlLimits): ValidationRule[] {
  const rules: ValidationRule[] = [
    maxDepthRule({ n: l.maxDepth, exposeLimits: true, ignoreIntrospection: true, ...asValidationError }),
    maxAliasesRule({ n: l.maxAliases, exposeLimits: true, ...asValidationError }),
    maxDirectivesRule({ n: l.maxDirectives, exposeLimits: true, ...asValidationError }),
    costLimitRule({ maxCost: l.maxCost, exposeLimits: true, ignoreIntrospection: true, ...asValidationError }),
  ] as ValidationRule[];
  if (!l.introspection) rules.push(NoSchemaIntrospectionCustomRule);
  return rules;
}

const refused = (message: string, reason: string) => new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT', reason } });

/** For graphql-ws: parse and validate as Apollo does on HTTP; errors come back as the contract's. */
export function checkDocument(schema: GraphQLSchema, query: unknown, l: GraphqlLimits): { document: DocumentNode } | { errors: GraphQLError[] } {
  if (typeof query !== 'string') return { errors: [refused('The operation has no query text.', 'GRAPHQL_PARSE_FAILED')] };
  let document: DocumentNode;
  try {
    document = parse(query, { maxTokens: l.maxTokens });
  } catch (e) {
    return { errors: [refused((e as Error).message, 'GRAPHQL_PARSE_FAILED')] };
  }
  const errors = validate(schema, document, [...specifiedRules, ...limitRules(l)]);
  if (errors.length) return { errors: errors.map((e) => refused(withoutSuggestions(e.message, l), 'GRAPHQL_VALIDATION_FAILED')) };
  return { document };
}

/**
 * checkDocument with the valid documents kept by query text (the `max` most recently used):
 * subscribers send the same few texts, so thousands of subscriptions share one parsed, validated
 * AST (tokens and locations included) instead of holding one each, and skip parse and validation.
 */
export function cachedDocumentChecker(schema: GraphQLSchema, l: GraphqlLimits, max = 500): (query: unknown) => ReturnType<typeof checkDocument> {
  const valid = new Map<string, DocumentNode>();
  return (query) => {
    const hit = typeof query === 'string' ? valid.get(query) : undefined;
    if (hit) {
      valid.delete(query as string);
      valid.set(query as string, hit);
      return { document: hit };
    }
    const checked = checkDocument(schema, query, l);
    if ('document' in checked) {
      valid.set(query as string, checked.document);
      if (valid.size > max) valid.delete(valid.keys().next().value!);
    }
    return checked;
  };
}

/** "Did you mean …?" tells a prober the schema: gone where introspection is. */
export function withoutSuggestions(message: string, l: Pick<GraphqlLimits, 'introspection'>): string {
  return l.introspection ? message : message.replace(/ ?Did you mean .*\?$/, '');
}
